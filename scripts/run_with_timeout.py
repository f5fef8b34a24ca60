"""Run a command with a time limit, on any OS: `python scripts/run_with_timeout.py SECONDS COMMAND...`.

`make execute` uses it instead of GNU `timeout`, which macOS and Windows lack. On expiry the whole process
group gets SIGTERM (so the executor can stop its kernel), then SIGKILL 10 s later; the exit status is 124,
as with GNU timeout. SECONDS must be a finite number in (0, 86400]: a limit of "inf" would be no limit.
A command that cannot be started gives one line and exit status 127 (126 when it is not executable).
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys

GRACE_SECONDS = 10
MAX_SECONDS = 24 * 3600


def run(seconds: float, command: list[str]) -> int:
    posix = os.name == "posix"
    try:
        proc = subprocess.Popen(command, start_new_session=posix)
    except FileNotFoundError:
        print(f"run_with_timeout: command not found: {command[0]!r}", file=sys.stderr)
        return 127
    except (PermissionError, OSError) as error:
        print(f"run_with_timeout: cannot run {command[0]!r} ({error.strerror or error})", file=sys.stderr)
        return 126
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        print(f"run_with_timeout: {command[0]} ran past {seconds:g} s; stopping it", file=sys.stderr, flush=True)
        if posix:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
        try:
            proc.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            if posix:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
            proc.wait()
        return 124
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise


def parse_seconds(text: str) -> float | None:
    """The limit in seconds, or None when ``text`` is not a finite number in (0, MAX_SECONDS]."""
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS else None


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("run_with_timeout: usage: run_with_timeout.py SECONDS COMMAND [ARGS...]", file=sys.stderr)
        return 2
    seconds = parse_seconds(argv[0])
    if seconds is None:
        print(f"run_with_timeout: SECONDS must be a finite number of seconds in (0, {MAX_SECONDS}]; got {argv[0]!r}",
              file=sys.stderr)
        return 2
    return run(seconds, argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
