"""Training of one cell: permutation-invariant SI-SNR, Adam, gradient clipping, best checkpoint."""

from __future__ import annotations

import csv
import json
import logging
import random
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from sfsrnet.checkpoint import (
    build_system,
    load_separator_weights,
    save_checkpoint,
    system_spec,
)
from sfsrnet.data.loaders import train_loaders
from sfsrnet.errors import ConfigError
from sfsrnet.losses import SeparationLoss, pit_si_snr_loss
from sfsrnet.tracking import cell_run

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


def _write_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


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


def train_cell(config: dict[str, Any], out_dir: str | Path, threads: int | None = None) -> dict:
    """Train the cell described by a validated ``config``; write checkpoint, log and summary.

    Outputs in ``out_dir``: ``checkpoint.pt`` (best validation SI-SNR), ``last.pt``,
    ``train_log.csv`` (one row per epoch) and ``train.json`` (summary). Returns the summary.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    train_cfg = config["train"]
    device = resolve_device(train_cfg["device"])
    generator = seed_everything(int(config["seed"]))
    spec = system_spec(config)
    train_loader, valid_loader = train_loaders(config, generator)
    system = build_system(spec)
    staged = system.sr is not None and config["sr"]["training"] == "staged"
    init_from = config["sr"]["init_from"]
    if staged and not init_from:
        raise ConfigError(
            "sr.training is 'staged' but sr.init_from names no checkpoint of the separator to "
            "freeze (the workflow sets it to the SR-off cell's checkpoint)"
        )
    if init_from:
        load_separator_weights(system, init_from)
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
    loss_fn = SeparationLoss(spec["sample_rate"], train_cfg["multiloss"])
    use_bf16 = train_cfg["precision"] == "bf16"

    def autocast():
        if use_bf16:
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return nullcontext()

    epochs = (config["sr"]["epochs"] if staged else None) or train_cfg["epochs"]
    log_path = out / TRAIN_LOG
    log_path.unlink(missing_ok=True)
    best = {"epoch": -1, "valid_si_snr": -float("inf")}
    step_times: list[float] = []
    start = time.monotonic()
    with cell_run(config, "train") as run:
        run.log_metrics({"n_params": n_params, "n_params_sr": n_params_sr})
        for epoch in range(1, epochs + 1):
            system.train()
            if staged:
                system.separator.eval()  # frozen: no dropout, as it was evaluated
            epoch_start = time.monotonic()
            losses = []
            bar = tqdm(
                train_loader,
                desc=f"epoch {epoch}/{epochs}",
                # A bar only on a terminal: in a job's log file the per-epoch lines say enough.
                disable=not (train_cfg["progress"] and sys.stderr.isatty()),
                mininterval=2.0,
                leave=False,
            )
            for mix, ref, lengths in bar:
                t0 = time.perf_counter()
                mix, ref = mix.to(device), ref.to(device)
                with autocast():
                    est = system(mix)
                loss = loss_fn.for_system(system, est, ref, staged, lengths=lengths)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if train_cfg["clip_grad_norm"]:
                    torch.nn.utils.clip_grad_norm_(trainable, train_cfg["clip_grad_norm"])
                optimizer.step()
                step_times.append(time.perf_counter() - t0)
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.2f}")
            valid_si_snr = validate(system, valid_loader, device, autocast)
            scheduler.step(valid_si_snr)
            row = {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "valid_si_snr": valid_si_snr,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": round(time.monotonic() - epoch_start, 2),
            }
            _write_row(log_path, row)
            run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            log.info(
                "epoch %d: train loss %.3f, valid SI-SNR %.2f dB (%.0f s)",
                epoch,
                row["train_loss"],
                valid_si_snr,
                row["seconds"],
            )
            save_checkpoint(out / LAST_CHECKPOINT, system, spec, epoch=epoch)
            if valid_si_snr > best["valid_si_snr"]:
                best = {"epoch": epoch, "valid_si_snr": valid_si_snr}
                save_checkpoint(
                    out / CHECKPOINT, system, spec, epoch=epoch, valid_si_snr=valid_si_snr
                )
        summary = {
            "best_epoch": best["epoch"],
            "best_valid_si_snr": best["valid_si_snr"],
            "epochs": epochs,
            "n_params": n_params,
            "n_params_separator": n_params - n_params_sr,
            "n_params_sr": n_params_sr,
            "sr_training": ("staged" if staged else "joint") if system.sr is not None else None,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "train_seconds": round(time.monotonic() - start, 1),
            "median_step_seconds": statistics.median(step_times) if step_times else None,
        }
        (out / TRAIN_SUMMARY).write_text(json.dumps(summary, indent=2))
        run.log_metrics({"best_valid_si_snr": best["valid_si_snr"]})
        run.log_artifact(log_path)
    return summary
