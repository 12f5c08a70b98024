"""What a killed training needs to go on as if it had never stopped.

``last.pt`` (written atomically after every epoch) is :meth:`TrainingState.state_dict`: the
weights, the epoch and a ``resume`` mapping with the optimiser, scheduler, the train log so far,
the best epoch and its weights, step times, every random state that shapes the rest of training
(Python, NumPy, torch CPU and CUDA, the data order's generator) and the training-relevant part of
the config. A run resumes only from a ``last.pt`` written for the same training config; on CPU the
result is then bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sfsrnet.errors import DataError

log = logging.getLogger(__name__)


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
    """The cell's training identity (:func:`sfsrnet.study.training_part`, the keys that can change
    the trained weights) flattened to dotted keys, plus what it points at: the digest of
    ``sr.init_from``'s file and of the corpus's manifest."""
    from sfsrnet.data import corpus_folder
    from sfsrnet.study import training_part

    flat = _flatten(training_part(config))
    identity = {k: json.dumps(v, sort_keys=True) for k, v in flat.items()}
    init_from = config["sr"]["init_from"]
    if init_from:
        identity["sr.init_from:sha256"] = _file_digest(init_from)
    folder = corpus_folder(config["data"])
    manifest = Path(folder) / "manifest.json" if folder else None
    if manifest is not None and manifest.is_file():
        identity["data:manifest"] = _file_digest(manifest)
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


def cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model``'s ``state_dict`` (not shared with the live weights)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _no_best() -> dict[str, Any]:
    return {"epoch": -1, "valid_si_snr": -math.inf}


@dataclass
class TrainingState:
    """Everything a training carries from one epoch to the next, named in one place.

    The live objects (``model``, ``optimizer``, ``scheduler`` and the data order's ``generator``)
    are changed in place by training; the other fields record the epochs so far. ``last.pt`` is
    :meth:`state_dict` (plain data and tensors, loadable with ``weights_only=True``) and resuming
    is :meth:`load_state_dict` of it.

    Fields: ``identity`` (:func:`training_identity`) and ``seed`` of the config; ``epoch``, the
    last finished epoch (0 before the first); ``rows``, the train log's rows; ``best``, the best
    epoch and its validation SI-SNR; ``best_weights``, a CPU copy of that epoch's weights;
    ``step_times`` (s) of every optimiser step; ``seconds_before``, training time of earlier runs;
    ``resumed_from``, the epochs earlier runs stopped after; ``skipped_batches``, non-finite
    batches skipped in all; ``finished``, set when the last epoch is done (never resumed then).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    generator: torch.Generator
    identity: dict[str, Any]
    seed: int
    epoch: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=_no_best)
    best_weights: dict[str, torch.Tensor] | None = None
    step_times: list[float] = field(default_factory=list)
    seconds_before: float = 0.0
    resumed_from: list[int] = field(default_factory=list)
    skipped_batches: int = 0
    finished: bool = False
    started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def train_seconds(self) -> float:
        """Training time so far, earlier runs included."""
        return self.seconds_before + time.monotonic() - self.started

    def end_epoch(self, row: dict[str, Any]) -> bool:
        """Record a finished epoch's log ``row`` (with ``epoch`` and ``valid_si_snr``); returns
        whether it is the best epoch so far, whose weights are then kept in ``best_weights``."""
        self.epoch = int(row["epoch"])
        self.rows.append(row)
        improved = row["valid_si_snr"] > self.best["valid_si_snr"]
        if improved:
            self.best = {"epoch": self.epoch, "valid_si_snr": row["valid_si_snr"]}
            self.best_weights = cpu_copy(self.model)
        return improved

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch", "state_dict" (the model's, on CPU), "resume"}``: what ``last.pt`` holds
        besides its format and system spec."""
        best_is_current = self.best["epoch"] == self.epoch
        resume = {
            "identity": self.identity,
            "identity_digest": identity_digest(self.identity),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rows": self.rows,
            "best": self.best,
            # Written once: when the best weights are this epoch's, they are the model's.
            "best_state_dict": None if best_is_current else self.best_weights,
            "step_times": torch.tensor(self.step_times, dtype=torch.float64),
            "skipped_batches": self.skipped_batches,
            "train_seconds": self.train_seconds,
            "resumed_from": self.resumed_from,
            "seed": self.seed,
            "finished": self.finished,
            # Nothing may draw a random number between this capture and the next epoch.
            "rng": rng_state(self.generator),
        }
        weights = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return {"epoch": self.epoch, "state_dict": weights, "resume": resume}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`state_dict` returned (e.g. ``last.pt``'s payload), random states
        included. The identity is not checked here (:func:`load_resume_state` does)."""
        resume = state["resume"]
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(resume["optimizer"])
        self.scheduler.load_state_dict(resume["scheduler"])
        self.identity = dict(resume["identity"])
        self.seed = int(resume["seed"])
        self.epoch = int(state["epoch"])
        self.rows = list(resume["rows"])
        self.best = dict(resume["best"])
        best = resume["best_state_dict"]
        self.best_weights = cpu_copy(self.model) if best is None else best
        self.step_times = resume["step_times"].tolist()
        self.seconds_before = float(resume["train_seconds"])
        self.started = time.monotonic()
        self.resumed_from = list(resume["resumed_from"])
        self.skipped_batches = int(resume["skipped_batches"])
        self.finished = bool(resume["finished"])
        set_rng_state(resume["rng"], self.generator)
