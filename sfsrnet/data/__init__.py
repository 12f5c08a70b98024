"""Corpora: the embedded synthetic-speech corpus, real corpora on disk, and their one identity.

:func:`resolve_corpus` and :func:`corpus_folder` (from :mod:`sfsrnet.data.identity`) say which
folder holds the corpus a config describes. Names are imported on first use so that importing the
package (as the synthesis workers do) stays light: no torch, no pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["corpus_folder", "corpus_key", "resolve_corpus"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("sfsrnet.data.identity"), name)
    raise AttributeError(f"module 'sfsrnet.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
