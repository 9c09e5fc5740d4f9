"""Unit tests: each test gets a lock folder of its own, so sysctl records one test writes are not another's."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def own_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$NETNSKIT_LOCK_DIR`` set to a fresh folder (mode 0700) for the test."""
    folder = tmp_path / "netnskit-run"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("NETNSKIT_LOCK_DIR", str(folder))
    return folder
