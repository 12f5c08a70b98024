"""MLflow tracking: one parent run per study, one child run per cell, found again by stable keys.

The embedded default store is a SQLite file under the results folder (MLflow refuses the old
``./mlruns`` file store); a server URI comes from the config or ``MLFLOW_TRACKING_URI``.

Runs are found again by tags, never by name: the parent by ``sfsrnet.study`` and
``sfsrnet.role = study``, a cell by ``sfsrnet.study`` and ``sfsrnet.cell``. A rerun therefore
reopens the same runs. Parallel jobs are serialised by a file lock beside a SQLite store; against a
server, where no shared lock exists, two jobs that raced to create the same run both settle on the
oldest one and the other is deleted (see :func:`_settle`), so neither is lost nor duplicated.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from filelock import FileLock

log = logging.getLogger(__name__)

CELL_TAG = "sfsrnet.cell"
STUDY_TAG = "sfsrnet.study"
ROLE_TAG = "sfsrnet.role"
CONFIG_TAG = "sfsrnet.config_hash"
PARENT_TAG = "mlflow.parentRunId"
# Small files of a cell folder that its run keeps as artifacts (checkpoints only on request).
CELL_FILES = (
    "config.yaml",
    "train_log.csv",
    "train.json",
    "metrics.csv",
    "bands.csv",
    "summary.json",
    "cost.json",
    "provenance_train.json",
    "provenance_evaluate.json",
)


def tracking_uri(config: dict[str, Any]) -> str:
    """The tracking URI for a validated config (config, then environment, then SQLite file)."""
    uri = config["mlflow"]["tracking_uri"] or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    db = Path(config["results_dir"]).resolve() / "mlflow.db"
    return f"sqlite:///{db}"


def _lock_for(uri: str) -> FileLock | None:
    # SQLite cannot serialise MLflow's first-time schema migration or two "create experiment"
    # calls from parallel jobs; a lock beside the database file does.
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(db) + ".lock")
    return None


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept as strings), for MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _experiment(client: Any, config: dict[str, Any]) -> str:
    name = config["mlflow"]["experiment"] or config["study"]
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifacts = None
    if tracking_uri(config).startswith("sqlite:///"):
        # Beside the database, so the whole record of a study moves as one folder.
        artifacts = (Path(config["results_dir"]).resolve() / "mlartifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except Exception:  # another job created it first (server stores have no shared lock)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _settle(client: Any, exp_id: str, query: str) -> list[Any]:
    """Active runs matching ``query``, oldest first; all but the oldest are duplicates."""
    runs = client.search_runs([exp_id], filter_string=query, max_results=1000)
    return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))


def _find_or_create(
    client: Any, exp_id: str, query: str, tags: dict[str, str], params: dict[str, str] | None
) -> tuple[str, bool]:
    """The one run matching ``query``: reused when it exists, else created with tags and params.

    Returns ``(run_id, created)``. After creating, the query is repeated: when a parallel job
    created a twin at the same moment, every job keeps the oldest and deletes its own younger one.
    """
    runs = _settle(client, exp_id, query)
    if runs:
        return runs[0].info.run_id, False
    from mlflow.entities import Param

    run_id = client.create_run(exp_id, tags=tags).info.run_id
    if params:
        batch = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(batch), 100):  # MLflow caps a batch at 100 params
            client.log_batch(run_id, params=batch[i : i + 100])
    runs = _settle(client, exp_id, query)
    if runs and runs[0].info.run_id != run_id:
        client.delete_run(run_id)
        return runs[0].info.run_id, False
    return run_id, True


def _study_query(study: str) -> str:
    return f"tags.`{STUDY_TAG}` = '{_quote(study)}' and tags.`{ROLE_TAG}` = 'study'"


def _cell_query(study: str, cell: str) -> str:
    return (
        f"tags.`{STUDY_TAG}` = '{_quote(study)}' and tags.`{ROLE_TAG}` = 'cell' "
        f"and tags.`{CELL_TAG}` = '{_quote(cell)}'"
    )


def _study_run(client: Any, exp_id: str, config: dict[str, Any]) -> str:
    study = config["study"]
    tags = {STUDY_TAG: study, ROLE_TAG: "study", "mlflow.runName": study}
    run_id, _ = _find_or_create(client, exp_id, _study_query(study), tags, None)
    return run_id


class CellRun:
    """Logging calls for one run; a no-op when tracking is disabled."""

    def __init__(self, client: Any = None, run_id: str | None = None) -> None:
        self.client = client
        self.run_id = run_id

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.client is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None]
        self.client.log_batch(self.run_id, metrics=batch)

    def logged_steps(self, key: str) -> set[int]:
        """Steps at which the run already has metric ``key`` (none when tracking is off)."""
        if self.client is None:
            return set()
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def log_artifacts(self, folder: str | Path, artifact_path: str | None = None) -> None:
        if self.client is not None:
            self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.client is not None:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_cell_files(self, cell_dir: str | Path, checkpoints: bool = False) -> None:
        """The cell folder's small files (:data:`CELL_FILES`), its examples and, on request,
        its checkpoints, as artifacts of the run."""
        if self.client is None:
            return
        cell_dir = Path(cell_dir)
        for name in CELL_FILES + (("checkpoint.pt",) if checkpoints else ()):
            if (cell_dir / name).is_file():
                self.log_artifact(cell_dir / name)
        if (cell_dir / "examples").is_dir():
            self.log_artifacts(cell_dir / "examples", "examples")


def log_training(run: CellRun, train_dir: str | Path) -> bool:
    """Log a finished training to ``run`` from the files it wrote in ``train_dir``.

    Per epoch (``step`` = epoch), every column of ``train_log.csv`` but ``epoch``; once,
    ``n_params``, ``n_params_sr`` and ``best_valid_si_snr`` of ``train.json``; and
    ``train_log.csv`` as an artifact. Epochs the run already holds are not logged again, so
    evaluating a cell twice leaves one value per epoch. Training itself never talks to MLflow:
    a tracking failure cannot stop it, and MLflow settings are not part of what it depends on.
    Returns False (and says why in the log) when ``train_dir`` holds no finished training.
    """
    train_dir = Path(train_dir)
    log_csv, summary_json = train_dir / "train_log.csv", train_dir / "train.json"
    missing = [p.name for p in (log_csv, summary_json) if not p.is_file()]
    if missing:
        log.info("%s holds no %s: no training to log to MLflow", train_dir, " or ".join(missing))
        return False
    with log_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    summary = json.loads(summary_json.read_text())
    done = run.logged_steps(next((k for k in rows[0] if k != "epoch"), "")) if rows else set()
    for row in rows:
        epoch = int(row["epoch"])
        if epoch not in done:
            run.log_metrics({k: float(v) for k, v in row.items() if k != "epoch"}, step=epoch)
    run.log_metrics({k: summary.get(k) for k in ("n_params", "n_params_sr", "best_valid_si_snr")})
    run.log_artifact(log_csv)
    return True


@contextmanager
def _running(client: Any, run_id: str) -> Iterator[CellRun]:
    """The run's logging calls; the run ends FINISHED, or FAILED when the block raises."""
    try:
        yield CellRun(client, run_id)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")


@contextmanager
def cell_run(config: dict[str, Any], job: str) -> Iterator[CellRun]:
    """Open (or reopen) the MLflow child run of the cell described by a resolved cell ``config``.

    The study's parent run is found or created first. ``job`` (``train`` or ``evaluate``) is
    recorded as a tag. Params are the flattened resolved config; axis values are tags
    ``axis.<name>``. A cell whose config changed since its run was made gets a new run (the old
    one is deleted: it describes results that no longer exist).
    """
    if not config["mlflow"]["enabled"]:
        yield CellRun()
        return
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(config)
    study = config["study"]
    cell = config.get("cell", {}).get("name", "manual")
    params = {k: str(v)[:6000] for k, v in flatten(config).items() if not k.startswith("cell.")}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    lock = _lock_for(uri)
    with lock if lock is not None else nullcontext():
        client = MlflowClient(tracking_uri=uri)
        exp_id = _experiment(client, config)
        parent = _study_run(client, exp_id, config)
        query = _cell_query(study, cell)
        for old in _settle(client, exp_id, query):
            if old.data.tags.get(CONFIG_TAG) != digest:
                log.info(
                    "replacing MLflow run %s of cell %s (config changed)", old.info.run_id, cell
                )
                client.delete_run(old.info.run_id)
        tags = {
            STUDY_TAG: study,
            ROLE_TAG: "cell",
            CELL_TAG: cell,
            CONFIG_TAG: digest,
            PARENT_TAG: parent,
            "mlflow.runName": cell,
        }
        tags |= {f"axis.{k}": str(v) for k, v in config.get("cell", {}).get("axes", {}).items()}
        run_id, created = _find_or_create(client, exp_id, query, tags, params)
        if not created:
            client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, f"sfsrnet.{job}", "started")
    with _running(client, run_id) as run:
        yield run
    client.set_tag(run_id, f"sfsrnet.{job}", "done")


@contextmanager
def study_run(config: dict[str, Any]) -> Iterator[CellRun]:
    """Open the parent run of a study (for the report job); finished when the block ends."""
    if not config["mlflow"]["enabled"]:
        yield CellRun()
        return
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(config)
    lock = _lock_for(uri)
    with lock if lock is not None else nullcontext():
        client = MlflowClient(tracking_uri=uri)
        run_id = _study_run(client, _experiment(client, config), config)
        client.update_run(run_id, status="RUNNING")
    with _running(client, run_id) as run:
        yield run


def study_runs(uri: str, study: str, experiment: str | None = None) -> tuple[Any, list[Any]]:
    """The parent run of ``study`` and its cell runs (``(parent, [child, ...])``) in a store."""
    from mlflow.tracking import MlflowClient

    from sfsrnet.errors import DataError

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment or study)
    if exp is None:
        raise DataError(f"MLflow store {uri} has no experiment {experiment or study!r}")
    parents = _settle(client, exp.experiment_id, _study_query(study))
    if not parents:
        raise DataError(f"MLflow store {uri} has no parent run of study {study!r}")
    parent = parents[0]
    query = f"tags.`{PARENT_TAG}` = '{parent.info.run_id}' and tags.`{ROLE_TAG}` = 'cell'"
    children = _settle(client, exp.experiment_id, query)
    return parent, children
