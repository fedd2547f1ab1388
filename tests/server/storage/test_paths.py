"""Artifact path cleaning refuses everything that could escape the run's namespace."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from cairn.server.services.errors import InvalidInputError
from cairn.server.storage.paths import clean_artifact_path


@pytest.mark.parametrize("path", ["a.txt", "plots/confusion.png", "deep/er/file.tar.gz", "dir/"])
def test_good_paths(path: str) -> None:
    assert clean_artifact_path(path) == path.rstrip("/")


@given(st.text(max_size=60))
def test_no_cleaned_path_escapes(path: str) -> None:
    try:
        clean = clean_artifact_path(path)
    except InvalidInputError:
        return
    segments = clean.split("/")
    assert not clean.startswith("/") and ".." not in segments and "" not in segments and "\x00" not in clean
