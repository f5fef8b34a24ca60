"""Run a command with a time limit, on any OS: `python scripts/run_with_timeout.py SECONDS COMMAND...`.

`make execute` uses it instead of GNU `timeout`, which macOS and Windows lack. On expiry the whole process
group gets SIGTERM (so nbconvert can stop its kernel), then SIGKILL 10 s later; the exit status is 124,
as with GNU timeout.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

GRACE_SECONDS = 10


def run(seconds: float, command: list[str]) -> int:
    posix = os.name == "posix"
    proc = subprocess.Popen(command, start_new_session=posix)
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


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    try:
        seconds = float(argv[0])
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        print(f"run_with_timeout: SECONDS must be a positive number, got {argv[0]!r}", file=sys.stderr)
        return 2
    return run(seconds, argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
