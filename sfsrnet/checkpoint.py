"""Checkpoints that hold only plain data and tensors, loadable with ``weights_only=True``."""

from __future__ import annotations

import importlib
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from sfsrnet.errors import ConfigError, DataError
from sfsrnet.separators import build_separator, check_separator_args, strided_args
from sfsrnet.sr import SuperResolution
from sfsrnet.system import SeparationSystem, separator_rate

FORMAT = 1
# Checkpoints written since SR knows the factor and mode carry SR_ARGS; older ones were trained
# with the paper's SR inputs, which their missing keys default to on load (PAPER_SR_DEFAULTS).
SR_ARGS = 2
PAPER_SR_DEFAULTS: dict[str, Any] = {"ratio_max": None, "input_norm": "none"}


def system_spec(config: dict[str, Any]) -> dict[str, Any]:
    """What rebuilds a system from a validated cell config: separator, rate, factor, mode, n_src
    and the SR add-on's arguments (``None`` without SR), ``sr_control`` (``refine`` restricts the
    SR output to the band below the low-rate Nyquist) and ``sr_split_hz``, the SR split whether
    or not SR is on, so that twins are scored in the same bands."""
    data = config["data"]
    sr_args = config["sr"]["args"]
    split = sr_args.get("split_hz")
    return {
        "separator": config["separator"]["name"],
        "module": config["separator"]["module"],
        "separator_args": dict(config["separator"]["args"]),
        "n_src": int(data["n_src"]),
        "sample_rate": int(data["sample_rate"]),
        "factor": int(config["system"]["factor"]),
        "mode": config["system"]["mode"],
        "sr": dict(sr_args) if config["sr"]["enabled"] else None,
        "sr_control": config["sr"].get("control", "none") if config["sr"]["enabled"] else "none",
        # The SR network's own default split (sfsrnet.sr.SuperResolution) when none is given.
        "sr_split_hz": float(split) if split is not None else int(data["sample_rate"]) / 4,
    }


def _import_module(spec: dict[str, Any]) -> None:
    """Import ``separator.module``, a user's module that registers its separator on import."""
    if spec.get("module"):
        try:
            importlib.import_module(spec["module"])
        except ImportError as err:
            raise ConfigError(
                f"separator.module {spec['module']!r} cannot be imported: {err}"
            ) from err


def _separator_args(spec: dict[str, Any]) -> dict[str, Any]:
    args = spec["separator_args"]
    if spec["mode"] == "stride":
        args = strided_args(spec["separator"], args, spec["factor"])
    return args


def _build_sr(spec: dict[str, Any]) -> SuperResolution | None:
    if spec.get("sr") is None:
        return None
    try:
        # SR knows the system's factor and mode (its split and where the estimate is empty);
        # a spec's own sr.factor / sr.mode, if any, would contradict the system: the system wins.
        args = {**spec["sr"], "factor": spec["factor"], "mode": spec["mode"]}
        return SuperResolution(spec["n_src"], spec["sample_rate"], **args)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sr.args: {err}") from err


def check_spec(spec: dict[str, Any]) -> None:
    """Refuse what :func:`build_system` would refuse about the config, without building the
    separator: its module, name and argument names, stride mode without stride arguments, the
    rate, and the SR add-on's arguments (the add-on is built once and dropped: it is small)."""
    _import_module(spec)
    separator_rate(spec["sample_rate"], spec["factor"], spec["mode"])
    check_separator_args(spec["separator"], _separator_args(spec))
    _build_sr(spec)


def build_system(spec: dict[str, Any]) -> SeparationSystem:
    """A freshly initialised system from :func:`system_spec`'s mapping."""
    _import_module(spec)
    low_rate = separator_rate(spec["sample_rate"], spec["factor"], spec["mode"])
    args = _separator_args(spec)
    separator = build_separator(
        spec["separator"], n_src=spec["n_src"], sample_rate=low_rate, **args
    )
    sr = _build_sr(spec)
    # Checkpoints written before the refine control have no sr_control: plain SR.
    refine = sr is not None and spec.get("sr_control", "none") == "refine"
    system = SeparationSystem(
        separator, spec["sample_rate"], spec["factor"], spec["mode"], sr=sr, refine_only=refine
    )
    system.spec = dict(spec)
    return system


def save_checkpoint(
    path: str | Path, system: SeparationSystem, spec: dict[str, Any], **extra: Any
) -> None:
    """Write atomically (temporary file, then rename) so a killed job never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in system.state_dict().items()}
    payload = {"format": FORMAT, "spec": spec, "state_dict": state, "sr_args": SR_ARGS}
    write_payload(path, {**payload, **extra})


def write_payload(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file beside ``path``, then an atomic rename onto it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the rename, should the node go down
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_separator_weights(system: SeparationSystem, path: str | Path) -> dict[str, Any]:
    """Copy separator weights from ``path`` into ``system`` (staged SR, or a warm start).

    ``path`` is either a harness checkpoint, whose separator, arguments, rate, factor and mode
    must match the system's, or a plain ``state_dict`` of the separator module saved by a user
    with ``torch.save(model.state_dict(), path)`` (a pretrained model of their own).
    """
    raw = _read(path, "separator weights (sr.init_from)")
    if "format" not in raw:
        try:
            _load_state(system.separator, raw, f"sr.init_from {path}")
        except RuntimeError as err:  # shapes differ
            first = str(err).strip().splitlines()[-1].strip()
            raise ConfigError(f"sr.init_from {path} does not fit this separator: {first}") from err
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
    try:
        _load_state(system.separator, state, f"sr.init_from {path}")
    except RuntimeError as err:
        raise DataError(f"sr.init_from {path}: {str(err).strip().splitlines()[-1]}") from err
    return payload


def _read(path: str | Path, what: str) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``; a missing or unreadable file is a DataError.

    ``weights_only`` refuses pickled Python objects (they could run code on loading): such a file
    is reported as not one of ours, never unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message is paragraphs of advice; the object it refused is what matters here.
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found is None:
            raise DataError(
                f"{what} {path} is not a readable PyTorch checkpoint (damaged, or not written by "
                "torch.save)"
            ) from err
        raise DataError(
            f"{what} {path} holds a pickled {found.group(1)} besides tensors and plain data, so "
            "it is refused (sfsrnet loads checkpoints with weights_only=True, which never runs "
            "code from a file); save only state_dict tensors and plain values"
        ) from err
    except Exception as err:
        # A file cut short (torch's RuntimeError says where) or another file (a bare KeyError).
        detail = f": {str(err).split('. ')[0].strip()}" if isinstance(err, RuntimeError) else ""
        raise DataError(
            f"{what} {path} is not a readable PyTorch checkpoint (damaged, or not written by "
            f"torch.save){detail}"
        ) from err
    if not isinstance(payload, dict):
        raise DataError(f"{what} {path} holds a {type(payload).__name__}, not a mapping of tensors")
    return payload


def _check_format(payload: dict[str, Any], path: str | Path) -> dict[str, Any]:
    if "format" not in payload:
        raise DataError(
            f"checkpoint {path} is not an sfsrnet checkpoint (no 'format' entry; a bare "
            "state_dict can only start a separator, through sr.init_from)"
        )
    if payload["format"] != FORMAT:
        raise DataError(
            f"checkpoint {path} has format {payload['format']!r}; this version of sfsrnet "
            f"reads format {FORMAT}"
        )
    return payload


def _load_state(module: torch.nn.Module, state: dict[str, Any], what: str) -> None:
    """``load_state_dict`` whose error names a few missing / unexpected keys in one line."""
    result = module.load_state_dict(state, strict=False)
    bad = {"missing": result.missing_keys, "unexpected": result.unexpected_keys}
    if any(bad.values()):
        parts = [
            f"{len(keys)} {kind} key(s) ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
            for kind, keys in bad.items()
            if keys
        ]
        raise ConfigError(f"{what}: the weights do not fit the model: {'; '.join(parts)}")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of a harness checkpoint (``weights_only=True``), its format checked."""
    return _check_format(_read(path, "checkpoint"), path)


def load_checkpoint(path: str | Path) -> tuple[SeparationSystem, dict[str, Any]]:
    """Rebuild the system stored at ``path``; returns it (eval mode, CPU) and the whole payload."""
    payload = read_checkpoint(path)
    spec = payload["spec"]
    if spec.get("sr") is not None and payload.get("sr_args", 1) < SR_ARGS:
        # Trained before SR knew the factor: the split at rate / 4 and the paper's raw inputs.
        old = {**PAPER_SR_DEFAULTS, "split_hz": spec["sample_rate"] / 4}
        spec = {**spec, "sr": {**old, **spec["sr"]}}
    system = build_system(spec)
    try:
        _load_state(system, payload["state_dict"], f"checkpoint {path}")
    except (RuntimeError, ConfigError) as err:
        detail = str(err).strip().splitlines()[-1].strip()
        raise DataError(f"checkpoint {path} is damaged: {detail}") from err
    system.eval()
    return system, payload
