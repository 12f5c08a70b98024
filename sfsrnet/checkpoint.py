"""Checkpoints that hold only plain data and tensors, loadable with ``weights_only=True``."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch

from sfsrnet.errors import ConfigError, DataError
from sfsrnet.registry import build_separator, strided_args
from sfsrnet.sr import SuperResolution
from sfsrnet.system import SeparationSystem, separator_rate

FORMAT = 1


def system_spec(config: dict[str, Any]) -> dict[str, Any]:
    """What rebuilds a system from a validated cell config: separator, rate, factor, mode, n_src
    and the SR add-on's arguments (``None`` without SR)."""
    data = config["data"]
    return {
        "separator": config["separator"]["name"],
        "module": config["separator"]["module"],
        "separator_args": dict(config["separator"]["args"]),
        "n_src": int(data["n_src"]),
        "sample_rate": int(data["sample_rate"]),
        "factor": int(config["system"]["factor"]),
        "mode": config["system"]["mode"],
        "sr": dict(config["sr"]["args"]) if config["sr"]["enabled"] else None,
    }


def build_system(spec: dict[str, Any]) -> SeparationSystem:
    """A freshly initialised system from :func:`system_spec`'s mapping."""
    if spec.get("module"):
        try:
            importlib.import_module(spec["module"])
        except ImportError as err:
            raise ConfigError(
                f"separator.module {spec['module']!r} cannot be imported: {err}"
            ) from err
    low_rate = separator_rate(spec["sample_rate"], spec["factor"], spec["mode"])
    args = spec["separator_args"]
    if spec["mode"] == "stride":
        args = strided_args(spec["separator"], args, spec["factor"])
    separator = build_separator(
        spec["separator"], n_src=spec["n_src"], sample_rate=low_rate, **args
    )
    sr = None
    if spec.get("sr") is not None:
        try:
            sr = SuperResolution(spec["n_src"], spec["sample_rate"], **spec["sr"])
        except (TypeError, ValueError) as err:
            raise ConfigError(f"sr.args: {err}") from err
    system = SeparationSystem(separator, spec["sample_rate"], spec["factor"], spec["mode"], sr=sr)
    system.spec = dict(spec)
    return system


def save_checkpoint(
    path: str | Path, system: SeparationSystem, spec: dict[str, Any], **extra: Any
) -> None:
    """Write atomically (temporary file, then rename) so a killed job never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in system.state_dict().items()}
    payload = {"format": FORMAT, "spec": spec, "state_dict": state, **extra}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_separator_weights(system: SeparationSystem, path: str | Path) -> dict[str, Any]:
    """Copy separator weights from ``path`` into ``system`` (staged SR, or a warm start).

    ``path`` is either a harness checkpoint, whose separator, arguments, rate, factor and mode
    must match the system's, or a plain ``state_dict`` of the separator module saved by a user
    with ``torch.save(model.state_dict(), path)`` (a pretrained model of their own).
    """
    raw = _read(path, "separator weights (sr.init_from)")
    if "format" not in raw:
        try:
            system.separator.load_state_dict(raw)
        except RuntimeError as err:
            raise ConfigError(f"sr.init_from {path} does not fit this separator: {err}") from err
        return {"state_dict": raw}
    payload = _check_format(raw, path)
    keys = ("separator", "separator_args", "n_src", "sample_rate", "factor", "mode")
    mismatch = [k for k in keys if payload["spec"].get(k) != system.spec.get(k)]
    if mismatch:
        raise ConfigError(
            f"sr.init_from {path}: its separator differs from this cell's in {mismatch}"
        )
    prefix = "separator."
    state = {k[len(prefix) :]: v for k, v in payload["state_dict"].items() if k.startswith(prefix)}
    system.separator.load_state_dict(state)
    return payload


def _read(path: str | Path, what: str) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``; a missing or unreadable file is a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"{what} {path} cannot be loaded: {err}") from err


def _check_format(payload: dict[str, Any], path: str | Path) -> dict[str, Any]:
    if payload.get("format") != FORMAT:
        raise DataError(f"checkpoint {path} has format {payload.get('format')}, expected {FORMAT}")
    return payload


def load_checkpoint(path: str | Path) -> tuple[SeparationSystem, dict[str, Any]]:
    """Rebuild the system stored at ``path``; returns it (eval mode, CPU) and the whole payload."""
    payload = _check_format(_read(path, "checkpoint"), path)
    system = build_system(payload["spec"])
    system.load_state_dict(payload["state_dict"])
    system.eval()
    return system, payload
