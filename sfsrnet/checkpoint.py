"""Checkpoints that hold only plain data and tensors, loadable with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from sfsrnet.errors import DataError
from sfsrnet.registry import build_separator
from sfsrnet.system import SeparationSystem, separator_rate

FORMAT = 1


def system_spec(config: dict[str, Any]) -> dict[str, Any]:
    """What rebuilds a system from a validated cell config: separator, rate, factor, mode, n_src."""
    data = config["data"]
    return {
        "separator": config["separator"]["name"],
        "separator_args": dict(config["separator"]["args"]),
        "n_src": int(data["n_src"]),
        "sample_rate": int(data["sample_rate"]),
        "factor": int(config["system"]["factor"]),
        "mode": config["system"]["mode"],
    }


def build_system(spec: dict[str, Any]) -> SeparationSystem:
    """A freshly initialised system from :func:`system_spec`'s mapping."""
    low_rate = separator_rate(spec["sample_rate"], spec["factor"], spec["mode"])
    separator = build_separator(
        spec["separator"], n_src=spec["n_src"], sample_rate=low_rate, **spec["separator_args"]
    )
    return SeparationSystem(separator, spec["sample_rate"], spec["factor"], spec["mode"])


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


def load_checkpoint(path: str | Path) -> tuple[SeparationSystem, dict[str, Any]]:
    """Rebuild the system stored at ``path``; returns it (eval mode, CPU) and the whole payload."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"checkpoint {path} cannot be loaded: {err}") from err
    if payload.get("format") != FORMAT:
        raise DataError(f"checkpoint {path} has format {payload.get('format')}, expected {FORMAT}")
    system = build_system(payload["spec"])
    system.load_state_dict(payload["state_dict"])
    system.eval()
    return system, payload
