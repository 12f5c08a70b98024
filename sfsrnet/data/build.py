"""Building a corpus folder once, safely, and running work in fresh worker processes.

:func:`build_once` is the one way a corpus folder (embedded or prepared) comes to exist: under a
file lock, into a temporary folder renamed into place with its ``manifest.json`` last, so that a
folder with a manifest is always complete and holds the corpus its key names.

:func:`run_fresh` runs calls each in a new Python process started as ``python -m
sfsrnet.data.worker``. Unlike a ``spawn`` process pool it never re-imports the caller's
``__main__`` (a user's script without a ``__name__`` guard would run again in every worker).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock

from sfsrnet.data.identity import MANIFEST, read_manifest
from sfsrnet.errors import DataError

log = logging.getLogger(__name__)

# Lines of a failed worker's stderr shown in the error (the traceback's end names the cause).
_STDERR_LINES = 20


def build_once(
    folder: str | Path, key: str, build: Callable[[Path], dict[str, Any]], what: str
) -> dict[str, Any]:
    """Make ``folder`` with ``build`` unless it already holds a finished corpus with ``key``.

    ``build(tmp)`` writes everything but the manifest into the empty folder ``tmp`` and returns
    the manifest's fields; ``key`` is added to them. Several processes may call this at once:
    one builds, the others wait for the lock and reuse its result. ``what`` names the corpus in
    messages (e.g. "the wsj0-2mix corpus prepared"). A folder holding another key is
    a :class:`DataError` (it is never overwritten). Returns the manifest.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        existing = read_manifest(folder)
        if existing is not None:
            if existing.get("key") != key:
                raise DataError(
                    f"{folder} holds {what} with other settings (key {existing.get('key')}, "
                    f"wanted {key}); remove it or choose another folder"
                )
            log.info("corpus %s is up to date", folder)
            return existing
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            manifest = {"key": key, **build(tmp)}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
            if folder.exists():  # an unfinished folder (no manifest) left by a killed build
                shutil.rmtree(folder)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return manifest


def _package_parent() -> str:
    import sfsrnet

    return str(Path(sfsrnet.__file__).resolve().parents[1])


def _run_one(func: str, args: tuple, folder: Path, index: int, what: str) -> Any:
    inp, out = folder / f"{index}.in.pkl", folder / f"{index}.out.pkl"
    inp.write_bytes(pickle.dumps((func, args)))
    # The worker must import this very copy of sfsrnet (a checkout on PYTHONPATH, or an
    # install); -P keeps the current folder, which may hold another copy, off its path.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_package_parent(), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-P", "-m", "sfsrnet.data.worker", str(inp), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(proc.stderr.strip().splitlines()[-_STDERR_LINES:])
        raise DataError(
            f"{what}: worker process {index} ({func}) exited with {proc.returncode}; "
            f"its stderr:\n{tail}"
        )
    return pickle.loads(out.read_bytes())


def run_fresh(func: str, calls: Sequence[tuple], jobs: int, what: str) -> list[Any]:
    """``[f(*args) for args in calls]`` with ``f`` = ``"module:function"``, each call in a new
    Python process, at most ``jobs`` at a time, results in order.

    Arguments and results travel as pickles in a temporary folder. The first failure stops
    further starts and raises a :class:`DataError` with the worker's stderr (its traceback).
    """
    if not calls:
        return []
    # Threads only wait on the child processes, so they cost no CPU of their own. The pool is
    # shut down (running workers awaited) before the folder of their files is removed.
    with (
        tempfile.TemporaryDirectory(prefix="sfsrnet-work-") as tmp,
        cf.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool,
    ):
        futures = [
            pool.submit(_run_one, func, tuple(args), Path(tmp), i, what)
            for i, args in enumerate(calls)
        ]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
