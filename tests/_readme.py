"""The README's fenced code blocks, for the tests that run or compare them."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(lang: str, marker: str) -> str:
    """The README's one block of ``lang`` (```toml, ```python, ...) that contains ``marker``."""
    blocks = re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(), flags=re.S | re.M)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"expected one {lang} block with {marker!r} in README.md, found {len(found)}"
    return str(found[0])
