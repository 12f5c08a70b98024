"""Separator registry: the one place that maps a separator's name to the code that builds it.

A separator is any ``torch.nn.Module`` with integer attributes ``n_src`` and ``sample_rate`` whose
forward maps a mixture ``(batch, time)`` to estimates ``(batch, n_src, time)`` at its own rate.

The registry knows no separator by itself: a package registers its own when it is imported. The
ones that ship with sfsrnet are registered by importing :mod:`sfsrnet.separators`, which the code
that builds systems does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from sfsrnet.errors import ConfigError

SeparatorFactory = Callable[..., nn.Module]

_FACTORIES: dict[str, SeparatorFactory] = {}
_STRIDE_ARGS: dict[str, tuple[str, ...]] = {}


def _key(name: str) -> str:
    return name.strip().lower()


def register_separator(
    name: str, factory: SeparatorFactory, *, stride_args: tuple[str, ...] | None = None
) -> SeparatorFactory:
    """Register ``factory(n_src=..., sample_rate=..., **kwargs) -> nn.Module`` under ``name``.

    Names are case-insensitive; registering a name twice is refused so that two packages can never
    silently shadow each other. ``stride_args`` names the encoder's kernel and stride arguments
    that ``stride`` mode multiplies by the downsampling factor (the paper's Table 4); a separator
    registered without them runs in ``resample`` mode only. Returns the factory.
    """
    key = _key(name)
    if not key:
        raise ValueError("a separator name must not be empty")
    if key in _FACTORIES and _FACTORIES[key] is not factory:
        raise ValueError(f"a separator named {key!r} is already registered")
    if stride_args is not None:
        params = inspect.signature(factory).parameters
        missing = [a for a in stride_args if a not in params]
        if missing:
            raise ValueError(f"separator {key!r}: stride_args {missing} are not factory arguments")
        _STRIDE_ARGS[key] = tuple(stride_args)
    _FACTORIES[key] = factory
    return factory


def list_separators() -> list[str]:
    """Names of every registered separator, sorted."""
    return sorted(_FACTORIES)


def separator_factory(name: str) -> SeparatorFactory:
    """The factory registered under ``name``; the error lists the registered names."""
    key = _key(name)
    if key not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES)) or "none"
        raise ConfigError(f"unknown separator {name!r} (separator.name); registered: {known}")
    return _FACTORIES[key]


def strided_args(name: str, args: dict[str, Any], factor: int) -> dict[str, Any]:
    """``args`` with the encoder's kernel and stride multiplied by ``factor`` (``stride`` mode).

    Arguments the preset leaves out are taken from the factory's defaults.
    """
    factory = separator_factory(name)
    keys = _STRIDE_ARGS.get(_key(name))
    if keys is None:
        raise ConfigError(
            f"separator {name!r} was registered without stride_args, so system.mode 'stride' "
            "cannot scale its encoder; use system.mode 'resample'"
        )
    params = inspect.signature(factory).parameters
    scaled = dict(args)
    for key in keys:
        value = scaled.get(key, params[key].default)
        if not isinstance(value, int):
            raise ConfigError(f"separator {name!r}: {key} must be an integer for stride mode")
        scaled[key] = value * factor
    return scaled


def check_separator_args(name: str, args: dict[str, Any]) -> SeparatorFactory:
    """The factory of ``name``, after checking that it takes every key of ``args``.

    Builds nothing, so a training can refuse a misspelt argument before it reads its data.
    """
    factory = separator_factory(name)
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not takes_any:
        unknown = sorted(set(args) - set(params))
        if unknown:
            allowed = ", ".join(p for p in params if p not in ("n_src", "sample_rate"))
            raise ConfigError(
                f"separator {name!r} has no argument(s) {', '.join(unknown)} "
                f"(separator.args); it takes: {allowed}"
            )
    return factory


def build_separator(name: str, *, n_src: int, sample_rate: int, **kwargs: Any) -> nn.Module:
    """Build the separator ``name`` for ``n_src`` sources at ``sample_rate`` Hz.

    ``kwargs`` are the separator's constructor arguments (a ``config/separators/*.yaml`` preset).
    An argument the factory does not take is reported by name before anything is built.

    >>> import sfsrnet.separators  # registers the separators that ship with sfsrnet
    >>> sep = build_separator("convtasnet", n_src=2, sample_rate=8000, n_blocks=2, n_repeats=1)
    >>> import torch
    >>> sep(torch.zeros(1, 800)).shape
    torch.Size([1, 2, 800])
    """
    factory = check_separator_args(name, kwargs)
    try:
        model = factory(n_src=n_src, sample_rate=sample_rate, **kwargs)
    except TypeError as err:
        raise ConfigError(
            f"separator {name!r} rejected its arguments (separator.args): {err}"
        ) from err
    for attr, want in (("n_src", n_src), ("sample_rate", sample_rate)):
        got = getattr(model, attr, None)
        if got is None or int(got) != int(want):
            raise TypeError(
                f"separator {name!r} built a {type(model).__name__} whose {attr} is {got!r}, "
                f"expected {want}; a separator must expose n_src and sample_rate"
            )
    return model
