"""Asteroid's ConvTasNet and DPRNNTasNet, registered as ``convtasnet`` and ``dprnn``.

Asteroid's models already map ``(batch, time)`` to ``(batch, n_src, time)`` and keep their
``sample_rate``; the adapters only add the ``n_src`` attribute the contract asks for and keep the
constructor arguments one-to-one with ``config/separators/<name>.yaml``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from asteroid.models import ConvTasNet, DPRNNTasNet
from torch import nn

from sfsrnet.registry import register_separator


def _adapter(cls: type[nn.Module]) -> Callable[..., nn.Module]:
    """A factory for an Asteroid model class whose signature lists the class's named arguments.

    Asteroid's constructors end in ``**fb_kwargs``, which would accept a misspelt key and fail deep
    inside the filterbank; exposing only the named arguments lets the registry name the bad key.
    """

    def factory(n_src: int, sample_rate: int, **kwargs: Any) -> nn.Module:
        model = cls(n_src=n_src, sample_rate=sample_rate, **kwargs)
        model.n_src = n_src
        return model

    params = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    factory.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    factory.__name__ = f"build_{cls.__name__.lower()}"
    factory.__doc__ = f"Asteroid {cls.__name__}; keyword arguments are the class's own."
    return factory


ENCODER_ARGS = ("kernel_size", "stride")
build_convtasnet = register_separator("convtasnet", _adapter(ConvTasNet), stride_args=ENCODER_ARGS)
build_dprnn = register_separator("dprnn", _adapter(DPRNNTasNet), stride_args=ENCODER_ARGS)
