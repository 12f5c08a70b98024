"""The README's "Add SR to your own separator" example runs as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    section = README.read_text().split("## Add SR to your own separator", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_sr_example_trains_and_scores(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _example()], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"SI-SNRi with SR: -?\d+\.\d\d dB", result.stdout)
    cell = tmp_path / "results" / "my-sr" / "masknet"
    assert (cell / "checkpoint.pt").is_file() and (cell / "train_log.csv").is_file()
