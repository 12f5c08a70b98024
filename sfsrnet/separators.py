"""The separators that ship with sfsrnet, registered by importing this module.

Each built-in package registers its own separators when it is imported: :mod:`baselines`
(adapters of Asteroid's ConvTasNet and DPRNN) and :mod:`sfsrnet.models` (SepFormer and the SFSRNet
separator). The registry (:mod:`sfsrnet.registry`) imports neither, so there is no import cycle
and the registry stays free of any particular model.

Code that looks separators up by name takes the registry's functions from here, so the built-ins
are registered by then. This is a plain import, not a package entry point, because snakemake's
``--use-conda`` jobs run sfsrnet from a checkout on ``PYTHONPATH`` without installing it, where
no entry point exists.

>>> from sfsrnet.separators import list_separators
>>> {"convtasnet", "dprnn", "sepformer", "sfsrnet"} <= set(list_separators())
True
"""

from __future__ import annotations

import baselines  # noqa: F401  (registers convtasnet, dprnn)
import sfsrnet.models  # noqa: F401  (registers sepformer, sfsrnet)
from sfsrnet.registry import (
    build_separator,
    check_separator_args,
    list_separators,
    register_separator,
    separator_factory,
    strided_args,
)

__all__ = [
    "build_separator",
    "check_separator_args",
    "list_separators",
    "register_separator",
    "separator_factory",
    "strided_args",
]
