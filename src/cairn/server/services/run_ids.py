"""Run ids: each workspace owns its own part of the id space, so an id one workspace uses can never be
proposed by another, and the answer to a proposed id never depends on another workspace's runs.

A run id is 32 hex characters. The first 12 are the workspace's tag (from its name, which never changes);
the other 20 are random (server- or SDK-made ids) or derived from the id a client proposed. An id a client
proposes (an offline run, ``start_run``, an import) is kept when it carries the caller's tag, as the SDK's
ids do; any other proposal (another workspace's id, an MLflow run's id, a typed one) is mapped to an id
of the caller's part, the same one every time. So an id another workspace holds is answered exactly like
an unused one. The SDK makes its ids the same way (``cairn.client._run``).
"""

from __future__ import annotations

import hashlib
import secrets

TAG_LEN = 12


def workspace_tag(workspace: str) -> str:
    """The first characters of every run id made in ``workspace``."""
    return hashlib.sha256(f"cairn-workspace\x00{workspace}".encode()).hexdigest()[:TAG_LEN]


def new_run_id(workspace: str) -> str:
    """A fresh run id of ``workspace`` (80 random bits)."""
    return workspace_tag(workspace) + secrets.token_hex(16)[: 32 - TAG_LEN]


def stored_run_id(workspace: str, proposed: str) -> str:
    """The id a run proposed as ``proposed`` (32 hex characters) is stored under in ``workspace``."""
    tag = workspace_tag(workspace)
    if proposed.startswith(tag):
        return proposed
    derived = hashlib.sha256(f"cairn-run-id\x00{workspace}\x00{proposed}".encode()).hexdigest()
    return tag + derived[: 32 - TAG_LEN]
