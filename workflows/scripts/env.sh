#!/usr/bin/env bash
# Runs a command inside the project's virtual environment (.venv in the checkout), creating or
# refreshing it first when it is missing or when pyproject.toml changed since it was built.
#   bash workflows/scripts/env.sh study [snakemake args]   the default study (snakemake all)
#   bash workflows/scripts/env.sh test  [pytest args]      lint, format checks and the test suite
#   bash workflows/scripts/env.sh CMD ...                  any command, e.g. mlflow ui
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
venv="$root/.venv"
stamp="$venv/.sfsrnet-stamp"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)-$(python3 -c 'import sys; print(sys.version.split()[0])')"

if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "[env] setting up $venv (first run or pyproject.toml changed; about 3 minutes)" >&2
    python3 -m venv "$venv"
    log="$venv/install.log"
    start=$SECONDS
    if ! "$venv/bin/python" -m pip install --upgrade -e ".[dev]" >"$log" 2>&1; then
        echo "[env] pip install failed; the last lines of $log:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    echo "$want" >"$stamp"
    echo "[env] installed in $((SECONDS - start)) s (pip log: $log)" >&2
fi

export PATH="$venv/bin:$PATH"
# Two cores: one BLAS thread per process; training jobs set torch threads from their rule.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
    study)
        exec snakemake --workflow-profile workflows/profiles/default all "$@"
        ;;
    test)
        echo "[test] ruff" >&2
        ruff check .
        ruff format --check .
        echo "[test] snakefmt" >&2
        snakefmt --check Snakefile workflows/rules
        echo "[test] snakemake --lint" >&2
        lint="$(snakemake --lint 2>&1)"
        if ! grep -q "Congratulations" <<<"$lint"; then
            echo "$lint" >&2
            exit 1
        fi
        echo "[test] pytest" >&2
        exec python -m pytest "$@"
        ;;
    "")
        echo "usage: bash workflows/scripts/env.sh study|test|COMMAND [ARGS...]" >&2
        exit 2
        ;;
    *)
        exec "$cmd" "$@"
        ;;
esac
