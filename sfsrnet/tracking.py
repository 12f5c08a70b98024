"""MLflow tracking: one run per cell, found again by the cell's key so reruns update it.

The embedded default store is a SQLite file under the results folder (MLflow refuses the old
``./mlruns`` file store); a server URI comes from the config or ``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

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
CONFIG_TAG = "sfsrnet.config_hash"


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


class CellRun:
    """Logging calls for one cell's run; a no-op when tracking is disabled."""

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

    def log_artifacts(self, folder: str | Path, artifact_path: str | None = None) -> None:
        if self.client is not None:
            self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.client is not None:
            self.client.log_artifact(self.run_id, str(path), artifact_path)


@contextmanager
def cell_run(config: dict[str, Any], job: str) -> Iterator[CellRun]:
    """Open (or reopen) the MLflow run of the cell described by a resolved cell ``config``.

    ``job`` (``train`` or ``evaluate``) is recorded as a tag. The run is looked up by the tags
    ``sfsrnet.study`` and ``sfsrnet.cell``, so each cell has exactly one run however often it is
    rerun. Params are the flattened resolved config; axis values are tags.
    """
    if not config["mlflow"]["enabled"]:
        yield CellRun()
        return
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(config)
    study = config["study"]
    cell = config.get("cell", {}).get("name", "manual")
    experiment = config["mlflow"]["experiment"] or study
    params = {k: str(v)[:6000] for k, v in flatten(config).items() if not k.startswith("cell.")}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    lock = _lock_for(uri)
    with lock if lock is not None else nullcontext():
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            artifacts = Path(config["results_dir"]).resolve() / "mlartifacts"
            exp_id = client.create_experiment(experiment, artifact_location=artifacts.as_uri())
        else:
            exp_id = exp.experiment_id
        query = f"tags.`{STUDY_TAG}` = '{study}' and tags.`{CELL_TAG}` = '{cell}'"
        run_id = None
        for old in client.search_runs([exp_id], filter_string=query):
            if old.data.tags.get(CONFIG_TAG) == digest and run_id is None:
                run_id = old.info.run_id
            else:
                # The cell's config changed: its old run describes results that no longer exist.
                log.info(
                    "replacing MLflow run %s of cell %s (config changed)", old.info.run_id, cell
                )
                client.delete_run(old.info.run_id)
        if run_id is None:
            tags = {STUDY_TAG: study, CELL_TAG: cell, CONFIG_TAG: digest, "mlflow.runName": cell}
            axes = config.get("cell", {}).get("axes", {})
            tags |= {f"axis.{k}": str(v) for k, v in axes.items()}
            run_id = client.create_run(exp_id, tags=tags).info.run_id
            client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        else:
            client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, f"sfsrnet.{job}", "started")
    run = CellRun(client, run_id)
    try:
        yield run
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_tag(run_id, f"sfsrnet.{job}", "done")
    client.set_terminated(run_id, status="FINISHED")
