"""The README's "Add SR to your own separator" example runs as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "README.md"
# About 10 times what the example takes on 2 CPU cores.
TIMEOUT_S = 900


def _example() -> str:
    section = README.read_text().split("## Add SR to your own separator", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_sr_example_trains_and_scores(tmp_path):
    """Saved as a script and run as one (``python my_sr.py``), as a user does: the script has no
    ``if __name__ == "__main__"`` guard, so nothing may re-import it in a worker process."""
    (tmp_path / "my_sr.py").write_text(_example())
    result = subprocess.run(
        [sys.executable, "my_sr.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,  # a hang fails the test instead of blocking the suite
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"SI-SNRi with SR: -?\d+\.\d\d dB", result.stdout)
    cell = tmp_path / "results" / "my-sr" / "masknet"
    assert (cell / "checkpoint.pt").is_file() and (cell / "train_log.csv").is_file()
