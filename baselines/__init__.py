"""Adapters that make third-party separators fit the harness's separator contract.

Importing this package registers them: Asteroid's ConvTasNet and DPRNN
(:mod:`baselines.asteroid_models`) and a SepFormer on Asteroid's blocks
(:mod:`baselines.sepformer`).
"""

from baselines import asteroid_models, sepformer  # noqa: F401
