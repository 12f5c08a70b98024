"""Adapters that make third-party separators fit the harness's separator contract.

Importing this package registers them: Asteroid's ConvTasNet and DPRNN
(:mod:`baselines.asteroid_models`). Models written in this project live in :mod:`sfsrnet.models`.
"""

from baselines import asteroid_models  # noqa: F401
