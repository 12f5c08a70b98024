"""Training of one cell: permutation-invariant SI-SNR, Adam, gradient clipping, best checkpoint.

A killed training resumes from ``last.pt`` (see :mod:`sfsrnet.resume`); a non-finite loss or
gradient stops it with a :class:`~sfsrnet.errors.TrainingError` (or skips the batch, as
``train.nonfinite`` says) without ever writing the bad weights.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import random
import statistics
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from sfsrnet.audio import read_wav
from sfsrnet.checkpoint import (
    FORMAT,
    build_system,
    check_spec,
    load_separator_weights,
    system_spec,
    write_payload,
)
from sfsrnet.data.loaders import corpus_root, train_loaders
from sfsrnet.errors import ConfigError, DataError, TrainingError
from sfsrnet.losses import SeparationLoss, pit_si_snr_loss
from sfsrnet.resume import TrainingState, load_resume_state, training_identity
from sfsrnet.study import resolve_presets

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LAST_CHECKPOINT = "last.pt"
TRAIN_LOG = "train_log.csv"
TRAIN_SUMMARY = "train.json"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device is {name!r} but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a generator for the data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """The whole per-epoch log, rewritten (a resumed run restores the rows of earlier epochs)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_atomic(path, buffer.getvalue())


def check_split_files(root: str | Path, split: str, n_src: int, sample_rate: int) -> int:
    """Read every file of ``root/split`` once and refuse a bad one before training starts.

    Checks that the folders of the mixtures and of ``n_src`` sources exist with the same names,
    and that every file is a readable, complete, mono wav at ``sample_rate`` with finite samples,
    as long as its mixture, and that no source is silent. Raises :class:`DataError` naming the
    file; returns the number of mixtures. (Reading the default corpus's 5400 files takes about
    half a second.)
    """
    folder = Path(root) / split
    mix_dir = folder / "mix"
    if not mix_dir.is_dir():
        raise DataError(f"corpus split folder {mix_dir} does not exist (data.root {root})")
    names = sorted(p.name for p in mix_dir.glob("*.wav"))
    if not names:
        raise DataError(f"corpus split folder {mix_dir} holds no .wav files")
    subs = ["mix", *(f"s{c}" for c in range(1, n_src + 1))]
    for sub in subs[1:]:
        if not (folder / sub).is_dir():
            have = sorted(p.name for p in folder.glob("s[0-9]*") if p.is_dir())
            raise DataError(
                f"{folder / sub} does not exist: data.n_src is {n_src} but the corpus's {split} "
                f"split has the source folders {have}"
            )
    for name in names:
        length = None
        for sub in subs:
            path = folder / sub / name
            wav = read_wav(path, sample_rate)
            frames = wav.shape[0]
            if sub != "mix" and not wav.any():
                raise DataError(
                    f"audio file {path} is silent (every sample is zero): a source without "
                    "signal has no SI-SNR"
                )
            if length is None:
                length = frames
            elif frames != length:
                raise DataError(
                    f"audio file {path} has {frames} samples but its mixture "
                    f"{folder / 'mix' / name} has {length}"
                )
    return len(names)


@torch.no_grad()
def validate(system: torch.nn.Module, loader: DataLoader, device: torch.device, autocast) -> float:
    """Mean SI-SNR (dB, best permutation) over a loader of ``(mix, ref, name)`` items."""
    system.eval()
    pit = pit_si_snr_loss()  # the training criterion, so validation measures what is optimised
    total, count = 0.0, 0
    for mix, ref, _ in loader:
        mix, ref = mix.to(device), ref.to(device)
        with autocast():
            est = system(mix)
        total -= pit(est.float(), ref).item() * mix.shape[0]
        count += mix.shape[0]
    return total / count


def _cell_name(config: dict[str, Any], out: Path) -> str:
    return config.get("cell", {}).get("name") or str(out)


@dataclass
class _Training:
    """One cell's training once it is set up (:func:`_setup`): what the epochs share, and the
    :class:`~sfsrnet.resume.TrainingState` they change."""

    config: dict[str, Any]
    out: Path
    cell: str
    device: torch.device
    spec: dict[str, Any]
    system: torch.nn.Module
    staged: bool
    continued: bool
    epochs: int
    train_loader: DataLoader
    valid_loader: DataLoader
    loss_fn: SeparationLoss
    trainable: list[torch.nn.Parameter]
    state: TrainingState
    guard: _NonFiniteGuard
    n_params: int
    n_params_sr: int

    @property
    def train_cfg(self) -> dict[str, Any]:
        return self.config["train"]

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast when ``train.precision`` asks for it, else nothing."""
        if self.train_cfg["precision"] == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train one epoch and validate; returns its row of the train log (nothing saved)."""
        system, optimizer = self.system, self.state.optimizer
        system.train()
        if self.staged:
            system.separator.eval()  # frozen: no dropout, as it was evaluated
        sampler = self.train_loader.sampler
        if hasattr(sampler, "set_epoch"):
            # Dynamic mixing draws epoch k's mixtures from k, a resumed run included.
            sampler.set_epoch(epoch)
        epoch_start = time.monotonic()
        losses: list[float] = []
        skipped = 0
        bar = tqdm(
            self.train_loader,
            desc=f"epoch {epoch}/{self.epochs}",
            # A bar only on a terminal: in a job's log file the per-epoch lines say enough.
            disable=not (self.train_cfg["progress"] and sys.stderr.isatty()),
            mininterval=2.0,
            leave=False,
        )
        for step, (mix, ref, lengths) in enumerate(bar, start=1):
            t0 = time.perf_counter()
            mix, ref = mix.to(self.device), ref.to(self.device)
            with self.autocast():
                est = system(mix)
            loss = self.loss_fn.for_system(system, est, ref, self.staged, lengths=lengths)
            loss_value = loss.item()
            optimizer.zero_grad(set_to_none=True)
            problem = None
            if not math.isfinite(loss_value):
                problem = f"loss ({loss_value})"
            else:
                loss.backward()
                grad_norm = _grad_norm(self.trainable, self.train_cfg["clip_grad_norm"])
                if not math.isfinite(grad_norm):
                    problem = f"gradient norm ({grad_norm}; loss {loss_value:.4g})"
            if problem is not None:
                self.guard.skip_or_stop(problem, epoch, step, len(self.train_loader))
                optimizer.zero_grad(set_to_none=True)
                skipped += 1
                continue
            optimizer.step()
            self.state.step_times.append(time.perf_counter() - t0)
            losses.append(loss_value)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.2f}")
        valid_si_snr = validate(system, self.valid_loader, self.device, self.autocast)
        if not losses or not math.isfinite(valid_si_snr):
            self.guard.stop_after_epoch(epoch, valid_si_snr, len(losses))
        self.state.scheduler.step(valid_si_snr)
        return {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "valid_si_snr": valid_si_snr,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.monotonic() - epoch_start, 2),
            "skipped_batches": skipped,
        }

    def run_epoch_zero(self) -> dict[str, Any]:
        """Validate the system as it starts, before any training: epoch 0 of a cell that
        continues from a checkpoint (staged SR, the budget control). Returns its log row
        (``train_loss`` NaN: nothing trained). A fresh SR add-on is the identity, so a staged SR
        cell's epoch 0 is its SR-off twin's separator, and an SR that never beats it is not kept.
        """
        start = time.monotonic()
        valid_si_snr = validate(self.system, self.valid_loader, self.device, self.autocast)
        return {
            "epoch": 0,
            "train_loss": math.nan,
            "valid_si_snr": valid_si_snr,
            "lr": self.state.optimizer.param_groups[0]["lr"],
            "seconds": round(time.monotonic() - start, 2),
            "skipped_batches": 0,
        }

    def save_epoch(self, row: dict[str, Any]) -> None:
        """Record a finished epoch: train log, ``last.pt``, and ``checkpoint.pt`` when best."""
        improved = self.state.end_epoch(row)
        _write_log(self.out / TRAIN_LOG, self.state.rows)
        log.info(
            "epoch %d: train loss %.3f, valid SI-SNR %.2f dB (%.0f s)",
            row["epoch"],
            row["train_loss"],
            row["valid_si_snr"],
            row["seconds"],
        )
        self._save_last()
        if improved:
            _save_best(self.out, self.system, self.spec, self.state.best, None)

    def _save_last(self) -> None:
        payload = {"format": FORMAT, "spec": self.spec, **self.state.state_dict()}
        write_payload(self.out / LAST_CHECKPOINT, payload)

    def finish(self) -> dict[str, Any]:
        """Write ``train.json`` and mark ``last.pt`` finished; returns the summary."""
        state = self.state
        summary = {
            "best_epoch": state.best["epoch"],
            "best_valid_si_snr": state.best["valid_si_snr"],
            "epochs": self.epochs,
            "seed": state.seed,
            "n_params": self.n_params,
            "n_params_separator": self.n_params - self.n_params_sr,
            "n_params_sr": self.n_params_sr,
            "sr_training": ("staged" if self.staged else "joint")
            if self.system.sr is not None
            else None,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "train_seconds": round(state.train_seconds, 1),
            "median_step_seconds": statistics.median(state.step_times)
            if state.step_times
            else None,
            "resumed_from_epochs": state.resumed_from,
            "nonfinite": self.train_cfg["nonfinite"],
            "skipped_batches": state.skipped_batches,
        }
        _write_atomic(self.out / TRAIN_SUMMARY, json.dumps(summary, indent=2))
        # A finished training is never resumed: running the cell again trains it again.
        state.finished = True
        self._save_last()
        return summary


def _check(config: dict[str, Any], spec: dict[str, Any]) -> tuple[bool, Path]:
    """Refuse a bad config, then bad data, before anything is built; returns ``(staged, root)``.

    Config errors come first because they are cheap to find; reading every file of the corpus
    is not (seconds for the default corpus, longer for a real one).
    """
    resolve_device(config["train"]["device"])
    check_spec(spec)
    staged = spec["sr"] is not None and config["sr"]["training"] == "staged"
    if staged and not config["sr"]["init_from"]:
        raise ConfigError(
            "sr.training is 'staged' but sr.init_from names no checkpoint of the separator to "
            "freeze (the workflow sets it to the SR-off cell's checkpoint)"
        )
    if _is_budget(config) and not config["sr"]["init_from"]:
        raise ConfigError(
            "sr.control is 'budget' but sr.init_from names no checkpoint of the SR-off twin to "
            "train further (the study plan sets it to the twin's checkpoint)"
        )
    root = Path(corpus_root(config))  # a missing or unprepared corpus is named here
    if not root.is_dir():
        raise ConfigError(f"data.root {root} does not exist (no corpus there)")
    for split in ("train", "valid"):
        check_split_files(root, split, spec["n_src"], spec["sample_rate"])
    return staged, root


def _is_budget(config: dict[str, Any]) -> bool:
    """An SR-off cell of the budget control: its twin trained ``sr.epochs`` epochs further."""
    return not config["sr"]["enabled"] and config["sr"].get("control") == "budget"


def _setup(config: dict[str, Any], out: Path, threads: int | None) -> _Training:
    """Check config and data, build system, loaders and optimiser, and resume from ``last.pt``
    when it holds an unfinished training of the same config."""
    train_cfg = config["train"]
    spec = system_spec(config)
    staged, _ = _check(config, spec)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    cell = _cell_name(config, out)
    device = resolve_device(train_cfg["device"])
    if train_cfg["deterministic"]:
        _deterministic_kernels()
    generator = seed_everything(int(config["seed"]))
    system = build_system(spec)
    if config["sr"]["init_from"]:
        load_separator_weights(system, config["sr"]["init_from"])
    train_loader, valid_loader = train_loaders(config, generator)
    if staged:
        system.separator.requires_grad_(False)
    system = system.to(device)
    n_params = sum(p.numel() for p in system.parameters())
    n_params_sr = sum(p.numel() for p in system.sr.parameters()) if system.sr is not None else 0
    trainable = [p for p in system.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        trainable, lr=train_cfg["lr"], weight_decay=train_cfg["weight_decay"]
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=0.5, patience=train_cfg["lr_patience"]
    )
    identity = training_identity(config)
    state = TrainingState(system, optimizer, scheduler, generator, identity, int(config["seed"]))
    last_path = out / LAST_CHECKPOINT
    previous = load_resume_state(last_path, identity, cell) if train_cfg["resume"] else None
    if previous is None:
        (out / TRAIN_LOG).unlink(missing_ok=True)
    else:
        state.load_state_dict(previous)
        state.resumed_from.append(state.epoch)
        log.info("resuming %s from epoch %d (%s)", cell, state.epoch, last_path)
        if state.rows:
            _write_log(out / TRAIN_LOG, state.rows)
        # Snakemake removes a failed job's outputs: bring back the best checkpoint so far.
        _save_best(out, system, spec, state.best, state.best_weights)
    # A budget cell trains as long as a staged SR cell does, so one more epoch is not SR's gain.
    continued = staged or _is_budget(config)
    epochs = (config["sr"]["epochs"] if continued else None) or train_cfg["epochs"]
    return _Training(
        config=config,
        out=out,
        cell=cell,
        device=device,
        spec=spec,
        system=system,
        staged=staged,
        continued=continued,
        epochs=epochs,
        train_loader=train_loader,
        valid_loader=valid_loader,
        loss_fn=SeparationLoss(spec["sample_rate"], train_cfg["multiloss"]),
        trainable=trainable,
        state=state,
        guard=_NonFiniteGuard(train_cfg, cell, last_path, state),
        n_params=n_params,
        n_params_sr=n_params_sr,
    )


def train_cell(
    config: dict[str, Any], out_dir: str | Path, threads: int | None = None
) -> dict[str, Any]:
    """Train the cell described by a validated ``config``; write checkpoint, log and summary.

    Outputs in ``out_dir``: ``checkpoint.pt`` (best validation SI-SNR), ``last.pt`` (after every
    epoch; with everything a resumed run needs), ``train_log.csv`` (one row per epoch) and
    ``train.json`` (summary). When ``out_dir`` holds a ``last.pt`` of an unfinished training with
    the same training config (and ``train.resume`` is on), training resumes from it. Returns the
    summary. Training logs nothing to MLflow (``evaluate`` does, from these files). The presets
    are resolved as the workflow and the CLI resolve them (:func:`sfsrnet.study.resolve_presets`).
    """
    training = _setup(resolve_presets(config), Path(out_dir), threads)
    if training.continued and not training.state.rows:
        # Epoch 0, the system it starts from, competes for the best checkpoint: extra training
        # that makes validation worse is not kept. Not redone on resume (its row is in last.pt).
        training.save_epoch(training.run_epoch_zero())
    for epoch in range(training.state.epoch + 1, training.epochs + 1):
        row = training.run_epoch(epoch)
        training.save_epoch(row)
    return training.finish()


def _deterministic_kernels() -> None:
    """Deterministic GPU kernels (slower); CPU training is deterministic for a thread count."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def _grad_norm(params: list[torch.Tensor], clip: float | None) -> float:
    """Total gradient norm (before clipping to ``clip`` when it is set)."""
    if clip:
        return float(torch.nn.utils.clip_grad_norm_(params, clip))
    grads = [p.grad for p in params if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0


def _save_best(
    out: Path,
    system: torch.nn.Module,
    spec: dict[str, Any],
    best: dict[str, Any],
    state: dict[str, torch.Tensor] | None,
) -> None:
    """Write ``checkpoint.pt``: the current weights, or ``state`` (the best epoch's weights)."""
    extra = {"epoch": best["epoch"], "valid_si_snr": best["valid_si_snr"]}
    if state is None:
        state = {k: v.detach().cpu() for k, v in system.state_dict().items()}
    payload = {"format": FORMAT, "spec": spec, "state_dict": state, **extra}
    write_payload(out / CHECKPOINT, payload)


class _NonFiniteGuard:
    """What ``train.nonfinite`` does about a non-finite loss or gradient: stop (the default) or
    skip the batch, up to ``train.max_skipped_batches`` in all."""

    def __init__(
        self, train_cfg: dict[str, Any], cell: str, last: Path, state: TrainingState
    ) -> None:
        self.mode = train_cfg["nonfinite"]
        self.limit = train_cfg["max_skipped_batches"]
        self.cell = cell
        self.last = last
        # Counts skipped batches into the state; its epoch is the one last.pt holds, as the
        # guard is only called while an epoch runs, before the state records it.
        self.state = state

    def _kept(self) -> str:
        if self.state.rows:  # epoch 0 of a staged SR or budget cell is a checkpoint too
            return f"the last good checkpoint {self.last} (epoch {self.state.epoch}) is kept"
        return "no checkpoint had been written yet"

    def skip_or_stop(self, problem: str, epoch: int, step: int, steps: int) -> None:
        where = f"epoch {epoch}, step {step} of {steps}"
        if self.mode == "skip":
            self.state.skipped_batches += 1
            skipped = self.state.skipped_batches
            if self.limit is None or skipped <= self.limit:
                log.warning(
                    "%s: non-finite %s at %s: batch skipped (%d so far)",
                    self.cell,
                    problem,
                    where,
                    skipped,
                )
                return
            raise TrainingError(
                f"cell {self.cell}: non-finite {problem} at {where}, the "
                f"{skipped}th skipped batch, more than train.max_skipped_batches="
                f"{self.limit}; training stopped and {self._kept()}. Lower train.lr or check "
                "the data"
            )
        raise TrainingError(
            f"cell {self.cell}: non-finite {problem} at {where}; training stopped and "
            f"{self._kept()}. Lower train.lr, set train.clip_grad_norm, check the data, or set "
            "train.nonfinite: skip to skip such batches"
        )

    def stop_after_epoch(self, epoch: int, valid_si_snr: float, n_good: int) -> None:
        if n_good == 0:
            what = "every training batch of the epoch was skipped (non-finite)"
        else:
            what = f"the validation SI-SNR is {valid_si_snr} (the model outputs non-finite values)"
        raise TrainingError(
            f"cell {self.cell}: after epoch {epoch} {what}; training stopped and {self._kept()}"
        )
