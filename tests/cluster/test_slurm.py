"""The SLURM path end to end: the tiny study through sbatch on a real SLURM cluster.

`bash tests/cluster/run.sh` installs Debian's SLURM, brings up a single-node cluster with
accounting on this machine (tests/cluster/slurm_up.sh), runs this file and takes the cluster down.
The study runs as README's "Running on a SLURM cluster" says: the SLURM profile, the CPU-only
overlay (this machine has no GPU) and a site profile of the user's own (account, partition), with
MLflow on a `mlflow server`. Without a SLURM cluster the tests skip, unless SFSRNET_REQUIRE_SLURM=1
(then they fail).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PROFILES = REPO / "workflows" / "profiles"
SUBMITTED = ("train", "evaluate")  # every other rule is a local rule


def _overlay_resources() -> dict:
    """Per-rule resources of the CPU-only overlay, which the test runs with (no GPU here)."""
    return yaml.safe_load((PROFILES / "slurm-cpu" / "config.yaml").read_text())["set-resources"]


def _slurm_problem() -> str | None:
    """Why no SLURM cluster can run the test here, or None when one can."""
    for tool in ("sbatch", "sinfo", "sacct", "scontrol"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    # Answers at once; sinfo would retry for seconds when no slurmctld runs.
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if ping.returncode != 0:
        return f"slurmctld does not answer: {' '.join(ping.stdout.split()[:5])}"
    nodes = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if nodes.returncode != 0:
        return f"sinfo cannot reach slurmctld: {nodes.stderr.strip()}"
    if not {"idle", "mix", "alloc"} & set(nodes.stdout.split()):
        return f"no SLURM node is up (sinfo: {nodes.stdout.split()})"
    acct = subprocess.run(
        ["sacct", "-n", "-X", "-S", "now-1minutes"], capture_output=True, text=True
    )
    if acct.returncode != 0:
        return f"sacct cannot reach slurmdbd: {acct.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    """The default partition and the account to submit to (SFSRNET_SLURM_ACCOUNT, or sfsrnet)."""
    problem = _slurm_problem()
    if problem:
        message = f"no SLURM cluster: {problem}; bash tests/cluster/run.sh starts one here"
        if os.environ.get("SFSRNET_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    # SLURM refuses a job that asks for more memory than any node has.
    memory = subprocess.run(["sinfo", "-h", "-o", "%m"], capture_output=True, text=True)
    largest = max(int(m.rstrip("+")) for m in memory.stdout.split())
    wanted = max(r["mem_mb"] for r in _overlay_resources().values())
    if largest < wanted:
        pytest.fail(f"the largest SLURM node has {largest} MB; the profile asks for {wanted} MB")
    partitions = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True)
    default = [p.rstrip("*") for p in partitions.stdout.split() if p.endswith("*")]
    assert default, f"SLURM has no default partition: {partitions.stdout}"
    return {"partition": default[0], "account": os.environ.get("SFSRNET_SLURM_ACCOUNT", "sfsrnet")}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on localhost with a SQLite store, as README shows for a login node."""
    folder = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--workers", "1"]
    cmd += ["--serve-artifacts", "--artifacts-destination", str(folder / "artifacts")]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        for _ in range(240):  # startup takes seconds, more on a busy machine
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {(folder / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(
                f"mlflow server did not answer: {(folder / 'server.log').read_text()[-2000:]}"
            )
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers, nothing else
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _run(cmd: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    return out


@pytest.fixture(scope="module")
def study(cluster, mlflow_server, tmp_path_factory, shrink, small_grid):
    """Five cells of the default study, shrunk, through SLURM, then locally as the reference."""
    tmp = tmp_path_factory.mktemp("study")
    files = shrink(REPO / "config" / "config.yaml", tmp, {"study": "tiny", **small_grid})
    # The user's own profile: what README tells them to write for their site.
    site = tmp / "site-profile"
    site.mkdir()
    site_resources = [
        f"slurm_account={cluster['account']}",
        f"slurm_partition={cluster['partition']}",
    ]
    (site / "config.yaml").write_text(yaml.safe_dump({"default-resources": site_resources}))
    on_slurm = tmp / "slurm.yaml"
    on_slurm.write_text(
        yaml.safe_dump(
            {"results_dir": str(tmp / "slurm"), "mlflow": {"tracking_uri": mlflow_server}}
        )
    )
    out = _run(
        [
            *SNAKEMAKE,
            "all",
            *("--profile", str(PROFILES / "slurm"), "--profile", str(PROFILES / "slurm-cpu")),
            *("--profile", str(site)),
            # This node has 2 cores: one thread per job, as in the local run below, so that both
            # train the same way (torch on CPU is deterministic for a given thread count).
            *("--max-threads", "1"),
            # Poll sacct every few seconds, not 40+ (fine here; too often for a real cluster).
            *("--slurm-init-seconds-before-status-checks", "2"),
            *("--configfile", *files, str(on_slurm)),
        ]
    )
    run_id = re.search(r"SLURM run ID: (\S+)", out)
    assert run_id, out[-3000:]
    local = tmp / "local.yaml"
    local.write_text(
        yaml.safe_dump({"results_dir": str(tmp / "local"), "mlflow": {"enabled": False}})
    )
    _run(
        [
            *SNAKEMAKE,
            "all",
            *("--workflow-profile", "workflows/profiles/default", "--cores", "2"),
            *("--configfile", *files, str(local)),
        ]
    )
    cells = sorted(
        str(p.parent.relative_to(tmp / "local" / "tiny" / "cells"))
        for p in (tmp / "local" / "tiny" / "cells").rglob("metrics.csv")
    )
    assert len(cells) == 5  # the small grid minus its excludes
    return {"slurm": tmp / "slurm", "local": tmp / "local", "run_id": run_id[1], "cells": cells}


def _sacct(run_id: str) -> pd.DataFrame:
    """The run's jobs as SLURM's accounting has them (the plugin names each job by the run ID)."""
    fields = ["JobIDRaw", "JobName", "Comment", "State", "Account", "Partition"]
    fields += ["ReqMem", "Timelimit", "AllocCPUS", "ExitCode"]
    cmd = ["sacct", "-X", "--parsable2", "--noheader", f"--format={','.join(fields)}"]
    cmd += ["--name", run_id, "-S", "now-2days", "-E", "now"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line]
    return pd.DataFrame(rows, columns=fields)


def _minutes(limit: str) -> int:
    """sacct's [D-]HH:MM:SS time limit in minutes."""
    days, _, clock = limit.rpartition("-")
    hours, minutes, _ = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + hours * 60 + minutes


def test_every_train_and_evaluate_job_went_through_sbatch(study, cluster):
    jobs = _sacct(study["run_id"])
    want = {
        f"rule_{rule}_wildcards_{cell.replace('/', '_')}"
        for rule in SUBMITTED
        for cell in study["cells"]
    }
    # Exactly these: the corpus, the cell configs and the report are local rules.
    assert sorted(jobs.Comment) == sorted(want)
    assert jobs.State.eq("COMPLETED").all(), jobs.to_string()
    assert jobs.ExitCode.eq("0:0").all(), jobs.to_string()
    assert jobs.Account.eq(cluster["account"]).all()
    assert jobs.Partition.eq(cluster["partition"]).all()


def test_jobs_ask_slurm_for_the_profiles_resources(study):
    """Memory and time limit from the profiles (the CPU overlay's), one CPU (--max-threads 1)."""
    resources = _overlay_resources()
    jobs = _sacct(study["run_id"])
    for rule in SUBMITTED:
        mine = jobs[jobs.Comment.str.startswith(f"rule_{rule}_wildcards_")]
        assert len(mine) == len(study["cells"])
        assert mine.ReqMem.eq(f"{resources[rule]['mem_mb']}M").all(), mine.ReqMem.tolist()
        assert [_minutes(t) for t in mine.Timelimit] == [resources[rule]["runtime"]] * len(mine)
        assert mine.AllocCPUS.eq("1").all()


def test_metrics_equal_a_local_run(study):
    """Same seed, same thread count: every per-utterance score of every cell is the same."""
    for cell in study["cells"]:
        on_slurm, local = (
            pd.read_csv(study[where] / "tiny" / "cells" / cell / "metrics.csv")
            for where in ("slurm", "local")
        )
        pd.testing.assert_frame_equal(on_slurm, local, check_exact=False, rtol=1e-6, atol=1e-6)
    tables = [pd.read_csv(study[w] / "tiny" / "tables" / "cells.csv") for w in ("slurm", "local")]
    assert sorted(tables[0].cell) == study["cells"]
    pd.testing.assert_frame_equal(
        tables[0].drop(columns=["train_minutes"]),
        tables[1].drop(columns=["train_minutes"]),
        check_exact=False,
        rtol=1e-6,
    )
    ablation = [
        pd.read_csv(study[w] / "tiny" / "tables" / "ablation.csv") for w in ("slurm", "local")
    ]
    pd.testing.assert_frame_equal(*ablation, check_exact=False, rtol=1e-6)


def test_mlflow_server_holds_one_run_per_cell(study, mlflow_server):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    runs = [
        r for r in client.search_runs([experiment.experiment_id]) if "sfsrnet.cell" in r.data.tags
    ]
    assert sorted(r.data.tags["sfsrnet.cell"] for r in runs) == study["cells"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all("si_snr_i" in r.data.metrics for r in runs)
    # One parent run of the study, which every cell run points at.
    from sfsrnet.tracking import study_runs

    parent, children = study_runs(mlflow_server, "tiny")
    assert sorted(r.info.run_id for r in children) == sorted(r.info.run_id for r in runs)
    assert parent.info.status == "FINISHED"
    # The jobs logged to the server, not to the SQLite file a run without a server uses.
    assert not (study["slurm"] / "mlflow.db").exists()
