#!/usr/bin/env bash
# The SLURM integration test, start to finish, on a Debian 12 machine as root:
# install slurm-wlm, slurmdbd, munge and mariadb-server when missing, bring up a single-node
# cluster (slurm_up.sh), run tests/cluster/test_slurm.py with the project's .venv (made by
# workflows/scripts/env.sh when missing) and take the cluster down again (slurm_down.sh), also
# when the test fails. Extra arguments go to pytest.
#   bash tests/cluster/run.sh
# Keep the cluster running afterwards (to look at sacct, logs): SFSRNET_SLURM_KEEP=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
here=tests/cluster
start=$SECONDS

missing=()
for pair in sbatch:slurm-wlm slurmdbd:slurmdbd munged:munge mariadbd:mariadb-server; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
    echo "[cluster] installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "[cluster] installed in $((SECONDS - start)) s" >&2
fi

if [[ "${SFSRNET_SLURM_KEEP:-0}" != 1 ]]; then
    trap 'bash "$here/slurm_down.sh"' EXIT
fi
bash "$here/slurm_up.sh"

# The project's environment: .venv as workflows/scripts/env.sh makes it (made here when missing).
[[ -x .venv/bin/python ]] || bash workflows/scripts/env.sh true
export PATH="$PWD/.venv/bin:$PATH" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" SFSRNET_REQUIRE_SLURM=1
t0=$SECONDS
status=0
python -m pytest -q -m slurm "$here" "$@" || status=$?
echo "[cluster] test: $((SECONDS - t0)) s; all: $((SECONDS - start)) s" >&2
exit "$status"
