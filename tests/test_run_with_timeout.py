"""scripts/run_with_timeout.py: make execute's outer limit, checked before anything runs."""
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "run_with_timeout.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("seconds", ["inf", "nan", "0", "-5", "abc", "1e9"])
def test_a_limit_that_is_no_limit_is_refused_in_one_line(seconds):
    run = _run(seconds, sys.executable, "-c", "print('ran')")
    assert run.returncode == 2 and "ran" not in run.stdout
    assert run.stderr.count("\n") == 1 and "SECONDS must be a finite number" in run.stderr


def test_a_missing_command_is_one_line_not_a_traceback():
    run = _run("5", "no-such-program-anywhere")
    assert run.returncode == 127 and "command not found: 'no-such-program-anywhere'" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_command_runs_and_its_status_passes_through():
    assert _run("30", sys.executable, "-c", "import sys; sys.exit(3)").returncode == 3


def test_a_command_past_its_limit_is_stopped_with_124():
    run = _run("1", sys.executable, "-c", "import time; time.sleep(30)")
    assert run.returncode == 124 and "ran past 1 s" in run.stderr
