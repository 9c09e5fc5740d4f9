"""Figures for RELIABILITY.md: tests add counts here; ``scripts/reliability_report`` sums them.

A test calls :func:`record` with a figure's name and a count. When ``NETNSKIT_FIGURES`` names a
file, one JSON line is appended to it (tests in several processes may write; each line is one
``write`` of less than a pipe buffer, so lines do not interleave). Otherwise nothing is written.
"""

from __future__ import annotations

import json
import os

FIGURES_ENV = "NETNSKIT_FIGURES"


def record(figure: str, count: int, **detail: object) -> None:
    """Add ``count`` to ``figure`` in the figures file, if one is set."""
    path = os.environ.get(FIGURES_ENV)
    if not path:
        return
    line = json.dumps({"figure": figure, "count": count, **detail}, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
