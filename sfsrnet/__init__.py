"""sfsrnet: a benchmarking harness for single-channel speech separation with an SR add-on.

The public API is small: register and build separators, and wrap one into a
:class:`SeparationSystem` that runs it at a lower rate. Attributes are imported on first use, so
light submodules (e.g. the speech synthesis workers) do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["SeparationSystem", "build_separator", "list_separators", "register_separator"]
__version__ = "0.1.0"

_HOMES = {
    "SeparationSystem": "sfsrnet.system",
    # Through sfsrnet.separators, so the built-in separators are registered first.
    "build_separator": "sfsrnet.separators",
    "list_separators": "sfsrnet.separators",
    "register_separator": "sfsrnet.separators",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'sfsrnet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
