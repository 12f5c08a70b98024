"""Adapters that make third-party separators fit the harness's separator contract.

Importing this package registers them: see :mod:`baselines.asteroid_models`.
"""

from baselines import asteroid_models  # noqa: F401
