"""What a killed training needs to go on as if it had never stopped.

``last.pt`` (written atomically after every epoch) holds, besides the weights, a ``resume``
mapping: optimiser, scheduler, the train log so far, the best epoch and its weights, step times,
every random state that shapes the rest of training (Python, NumPy, torch CPU and CUDA, the data
order's generator) and the training-relevant part of the config. A run resumes only from a
``last.pt`` written for the same training config; on CPU the result is then bit-identical to an
uninterrupted run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sfsrnet.errors import DataError

log = logging.getLogger(__name__)

# Keys that cannot change what training computes: a change in them still resumes.
IGNORED_KEYS = ("study", "results_dir", "cell", "evaluate", "mlflow", "grid", "exclude")
IGNORED_TRAIN_KEYS = ("progress", "resume")


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random state that training draws from, as plain data and tensors."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "data_order": generator.get_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
    }
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only where CUDA is in use)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["kind"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data_order"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _file_digest(path: str | Path) -> str | None:
    path = Path(path)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def training_identity(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved cell config that shapes training, flattened to dotted keys, plus
    what it points at: the digest of ``sr.init_from``'s file and the corpus's manifest key."""
    relevant = {k: copy.deepcopy(v) for k, v in config.items() if k not in IGNORED_KEYS}
    relevant["train"] = {
        k: v for k, v in relevant.get("train", {}).items() if k not in IGNORED_TRAIN_KEYS
    }
    identity = {k: json.dumps(v, sort_keys=True) for k, v in _flatten(relevant).items()}
    init_from = config["sr"]["init_from"]
    if init_from:
        identity["sr.init_from:sha256"] = _file_digest(init_from)
    root = config["data"]["root"]
    manifest = Path(root) / "manifest.json" if root else None
    if manifest is not None and manifest.is_file():
        identity["data.root:manifest"] = _file_digest(manifest)
    return identity


def identity_digest(identity: dict[str, Any]) -> str:
    """Short hash of :func:`training_identity`."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def load_resume_state(
    path: str | Path, identity: dict[str, Any], cell: str
) -> dict[str, Any] | None:
    """The payload of ``path`` when training can resume from it, else ``None`` (the log says why:
    no file, another config, a finished training or an unreadable file)."""
    from sfsrnet.checkpoint import read_checkpoint

    path = Path(path)
    if not path.is_file():
        return None
    try:
        payload = read_checkpoint(path)
    except DataError as err:
        log.warning("%s: starting over, %s", cell, err)
        return None
    state = payload.get("resume")
    if not isinstance(state, dict):
        log.info("%s: starting over, %s holds no resume state", cell, path)
        return None
    if state.get("finished"):
        log.info("%s: starting over, %s is of a training that finished", cell, path)
        return None
    old = state.get("identity", {})
    if identity_digest(old) != identity_digest(identity):
        changed = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
        shown = ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "")
        log.info(
            "%s: starting over, %s was written for another config (changed: %s)", cell, path, shown
        )
        return None
    return payload
