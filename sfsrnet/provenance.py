"""What produced a result: package versions, git commit, command line, machine."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

PACKAGES = (
    "sfsrnet",
    "torch",
    "torchaudio",
    "asteroid",
    "numpy",
    "scipy",
    "pandas",
    "fast-bss-eval",
    "mir_eval",
    "mlflow",
    "snakemake",
    "espeakng-loader",
)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_state(path: str | Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the git checkout holding ``path`` (this package by default)."""
    where = Path(path or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """A JSON-ready record of the software and command behind a result."""
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": [sys.executable, "-m", "sfsrnet", *(sys.argv[1:] if argv is None else argv)],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda_device": cuda,
        "packages": {p: _version(p) for p in PACKAGES},
        "git": git_state(),
    }
