"""``conf/<env>/cairn.yml``: where to track, which experiment and run, what to log.

Read through the project's config loader, so Kedro's environments apply as for every other file
(``conf/base/cairn.yml`` overridden by ``conf/<env>/cairn.yml``). Every key is optional; an unknown key is
an error that names it (a typo must not silently turn tracking off). Environment variables win over the
file for what an orchestrator passes per task: ``CAIRN_RUN_ID``, ``CAIRN_RUN_KEY``, ``CAIRN_END_RUN``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

END_CHOICES = ("auto", "always", "never")
TEMPLATE = """\
# Cairn tracking for this Kedro project (cairn.integrations.kedro). Every key is optional: delete what you
# do not change. Kedro's environments apply: conf/<env>/cairn.yml overrides this file.
server:
  tracking_uri: null     # null: CAIRN_TRACKING_URI, or the embedded store under CAIRN_HOME when unset
  workspace: null        # null: CAIRN_WORKSPACE, or "default". The token is never written here: CAIRN_TOKEN
experiment:
  name: null             # null: the project's package name
run:
  name: null             # null: the pipeline's name ("__default__" is written as the package name)
  tags: {}               # added to the run's tags
  key: null              # join the run with this key in the experiment, created if missing (or CAIRN_RUN_KEY)
  id: null               # resume this run (or CAIRN_RUN_ID); wins over key
  end: auto              # auto: end a run this session created or joined by key; a run given by id is left
                         #   RUNNING for its owner (always: end it anyway; never: leave it to someone else).
                         #   A failed pipeline marks the run FAILED unless never. CAIRN_END_RUN overrides.
params:
  log: true
  include: []            # glob patterns of dotted keys (model.*); empty: all
  exclude: []
datasets:
  log: true              # a reference (name, type, filepath, version, role) for every dataset read or written
nodes:
  log_timing: true       # kedro.node.<name>.seconds metric and kedro.node.<name> status tag for every node
"""


class ConfigError(ValueError):
    """cairn.yml has a key or a value the plugin does not know."""


@dataclass
class CairnSettings:
    """cairn.yml with its sections flattened (``run.key`` is ``run_key``; the mapping is below the class)."""

    tracking_uri: str | None = None  # server:
    workspace: str | None = None
    experiment: str | None = None  # experiment:
    run_name: str | None = None  # run:
    run_tags: dict[str, str] = field(default_factory=dict)
    run_key: str | None = None
    run_id: str | None = None
    end: str = "auto"
    log_params: bool = True
    params_include: list[str] = field(default_factory=list)
    params_exclude: list[str] = field(default_factory=list)
    log_datasets: bool = True
    log_node_timing: bool = True

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, env: dict[str, str] | None = None) -> CairnSettings:
        """Settings from the loaded cairn.yml (``raw``), then the environment's overrides."""
        raw = dict(raw or {})
        sections = {"server": _SERVER, "experiment": _EXPERIMENT, "run": _RUN, "params": _PARAMS,
                    "datasets": _DATASETS, "nodes": _NODES}
        unknown = sorted(set(raw) - set(sections))
        if unknown:
            raise ConfigError(f"cairn.yml: unknown section(s) {unknown}; expected {sorted(sections)}")
        values: dict[str, Any] = {}
        for section, mapping in sections.items():
            values.update(_section(section, raw.get(section), mapping))
        settings = cls(**values)
        settings.apply_env(os.environ if env is None else env)
        settings.check()
        return settings

    def apply_env(self, env: Any) -> None:
        self.run_id = env.get("CAIRN_RUN_ID") or self.run_id
        self.run_key = env.get("CAIRN_RUN_KEY") or self.run_key
        self.end = env.get("CAIRN_END_RUN") or self.end
        if self.end.lower() in ("1", "true", "yes"):
            self.end = "always"
        elif self.end.lower() in ("0", "false", "no"):
            self.end = "never"

    def check(self) -> None:
        self.end = self.end.lower()
        if self.end not in END_CHOICES:
            raise ConfigError(f"cairn.yml: run.end must be one of {list(END_CHOICES)}, got {self.end!r}")
        for name in ("params_include", "params_exclude"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"cairn.yml: {name.replace('_', '.', 1)} must be a list of patterns")
        if not isinstance(self.run_tags, dict):
            raise ConfigError("cairn.yml: run.tags must be a mapping")
        self.run_tags = {str(k): str(v) for k, v in self.run_tags.items()}

    def tracking_env(self) -> dict[str, str]:
        """What workers need besides the run id: where to write."""
        env = {}
        if self.tracking_uri:
            env["CAIRN_TRACKING_URI"] = self.tracking_uri
        if self.workspace:
            env["CAIRN_WORKSPACE"] = self.workspace
        return env


_SERVER = {"tracking_uri": "tracking_uri", "workspace": "workspace"}
_EXPERIMENT = {"name": "experiment"}
_RUN = {"name": "run_name", "tags": "run_tags", "key": "run_key", "id": "run_id", "end": "end"}
_PARAMS = {"log": "log_params", "include": "params_include", "exclude": "params_exclude"}
_DATASETS = {"log": "log_datasets"}
_NODES = {"log_timing": "log_node_timing"}
_FIELDS = {f.name for f in fields(CairnSettings)}


def _section(name: str, raw: Any, mapping: dict[str, str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"cairn.yml: {name} must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(mapping))
    if unknown:
        raise ConfigError(f"cairn.yml: unknown key(s) {[f'{name}.{k}' for k in unknown]}; "
                          f"expected {[f'{name}.{k}' for k in mapping]}")
    return {mapping[k]: v for k, v in raw.items() if v is not None}
