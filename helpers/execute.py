"""Execute a notebook in a fresh kernel: the one way the course runs notebooks outside JupyterLab.

``make execute``, ``make bench`` (``helpers.bench``) and the kernel tests all come here. Besides the
per-cell and per-notebook time limits, this module works around jupyter/nbclient#312 (open upstream): while
a cell writes into an ipywidgets ``Output`` area, nbclient can miss the kernel's ``execute_reply`` and then
sits in one ``poll`` of the shell socket until the cell timeout runs out (measured: 10 of 39 runs stalled
for exactly one cell timeout after a panel cell). ``BoundedPollClient`` never waits on a socket longer than
``POLL_INTERVAL_S``; each new poll looks at the socket afresh, so a missed wake-up costs at most that long.

    python -m helpers.execute notebooks/*.ipynb --in-place       # what make execute runs
"""
from __future__ import annotations

import argparse
import ast
import asyncio
import json
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from queue import Empty

from helpers.validation import LabInputError, one_line, require_file, require_number

POLL_INTERVAL_S = 0.5  # the longest one missed wake-up can delay a cell (nbclient waits a whole cell timeout)
MAX_CELL_TIMEOUT_S = 3 * 3600  # make bench's reference scale needs long cells; beyond this is a hang
_PARAMETER_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def _client_class():
    """``BoundedPollClient``, built on first use so that importing helpers does not import nbclient."""
    from nbclient import NotebookClient
    from nbclient.client import timestamp
    from nbclient.exceptions import CellExecutionComplete, CellTimeoutError
    from nbclient.util import ensure_async

    class BoundedPollClient(NotebookClient):
        """``NotebookClient`` whose waits on the shell and IOPub channels are at most ``POLL_INTERVAL_S`` each.

        Upstream waits for the ``execute_reply`` with one ``get_msg(timeout=<cell timeout>)``; when the
        socket's wake-up is missed (nbclient#312) that call returns only at the timeout. Here the same wait is
        a loop of short polls up to the same deadline, so the reply is read within one interval of arriving.
        """

        async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive):
            deadline = None if timeout is None else time.monotonic() + timeout
            timeout_reply = None
            while True:
                if timeout_reply is not None:
                    msg = {**timeout_reply, "parent_header": {"msg_id": msg_id}}
                else:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        task_poll_kernel_alive.cancel()
                        await self._async_check_alive()
                        timeout_reply = await self._async_handle_timeout(timeout, cell)
                        continue
                    try:
                        msg = await ensure_async(self.kc.shell_channel.get_msg(
                            timeout=POLL_INTERVAL_S if left is None else min(POLL_INTERVAL_S, left)))
                    except Empty:
                        continue
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if self.record_timing and "header" in msg:
                    cell["metadata"].setdefault("execution", {})["shell.execute_reply"] = timestamp(msg)
                try:
                    await asyncio.wait_for(task_poll_output_msg, self.iopub_timeout)
                except (TimeoutError, Empty):
                    if self.raise_on_iopub_timeout:
                        task_poll_kernel_alive.cancel()
                        raise CellTimeoutError.error_from_timeout_and_cell(
                            "Timeout waiting for IOPub output", self.iopub_timeout, cell) from None
                    self.log.warning("Timeout waiting for IOPub output")
                task_poll_kernel_alive.cancel()
                return msg

        async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
            # Upstream polls IOPub without any timeout: the same missed wake-up would stall outputs, so loop here too.
            while True:
                try:
                    msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=POLL_INTERVAL_S))
                except Empty:
                    continue
                if msg["parent_header"].get("msg_id") == parent_msg_id:
                    try:
                        self.process_message(msg, cell, cell_index)
                    except CellExecutionComplete:
                        return

    return BoundedPollClient


def inject_parameters(nb, **values: object):
    """Replace the source of the notebook's cell tagged ``parameters`` with ``NAME = repr(value)`` lines.

    Args:
        nb: an ``nbformat`` notebook node (modified in place).
        values: the parameters, e.g. ``SCALE="reference"``; each must be declared in that cell.

    Returns:
        The same notebook node.

    Raises:
        LabInputError: when no cell (or more than one) is tagged ``parameters``, or a value is not declared there.

    Example:
        >>> import nbformat
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("SCALE = 'notebook'",
        ...                                                                 metadata={"tags": ["parameters"]})])
        >>> inject_parameters(nb, SCALE="reference").cells[0].source
        "# Parameters injected by helpers.execute\\nSCALE = 'reference'"
    """
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise LabInputError(f"a notebook run with parameters needs exactly one cell tagged 'parameters'; found "
                            f"{len(cells)}. Add the parameters cell described in notebooks/README.md.")
    declared = set(re.findall(r"^([A-Z_][A-Z0-9_]*)\s*=", cells[0].source, flags=re.M))
    unknown = set(values) - declared
    if unknown:
        raise LabInputError(f"the parameters cell does not declare {sorted(unknown)}; it declares {sorted(declared)}.")
    cells[0].source = "\n".join(["# Parameters injected by helpers.execute"]
                                + [f"{name} = {value!r}" for name, value in values.items()])
    return nb


def _checked_env(env: object) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise LabInputError(f"env must be a dict {{NAME: value}} of environment variables; got {type(env).__name__}.")
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or not isinstance(value, str):
            raise LabInputError(f"env entries must be strings NAME: value (no '=' in NAME); got {key!r}: {value!r}.")
    return dict(env)


def _checked_parameters(parameters: object) -> dict[str, object]:
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise LabInputError(f"parameters must be a dict {{NAME: value}}; got {type(parameters).__name__}.")
    for name, value in parameters.items():
        if not isinstance(name, str) or not _PARAMETER_NAME.fullmatch(name):
            raise LabInputError(f"parameter names are upper-case Python names such as SCALE; got {name!r}.")
        try:  # the parameters cell gets NAME = repr(value), so the repr must read back as the same value
            same = ast.literal_eval(repr(value)) == value
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            same = False
        if not same:
            raise LabInputError(f"parameters[{name!r}] must be a plain value (str, number, bool, None, or lists/dicts "
                                f"of them) whose repr reads back; got {type(value).__name__}.")
    return dict(parameters)


def _kernel_manager(spec_root: Path):
    """A kernel manager for a kernel running this very interpreter, whatever kernelspecs are installed."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec_dir = spec_root / "kernels" / "course-current-env"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "current env", "language": "python"}))
    # The asynchronous manager and client, as nbclient uses by default: with a blocking client a shell poll
    # holds the event loop and ignores its timeout.
    manager = AsyncKernelManager(kernel_name="course-current-env",
                                 kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_root / "kernels")]))
    manager.client_class = "jupyter_client.asynchronous.AsyncKernelClient"
    return manager


def execute_notebook(notebook: object, *, cell_timeout: float, notebook_timeout: float | None = None,
                     cwd: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                     parameters: Mapping[str, object] | None = None, store_widget_state: bool = True,
                     allow_errors: bool = False):
    """Execute every code cell of a notebook in a fresh kernel of this interpreter; return the executed notebook.

    Args:
        notebook: a path to an ``.ipynb`` file, or an ``nbformat`` notebook node (executed in place).
        cell_timeout: seconds one cell may run (a fraction is rounded up to whole seconds).
        notebook_timeout: seconds the whole notebook may run (cells get what is left), or None for no limit.
        cwd: the kernel's working folder (default: the notebook's folder, or the current one for a node).
        env: extra environment variables for the kernel, e.g. ``{"LAB_VERDICTS": "1"}``.
        parameters: values for the cell tagged ``parameters`` (see ``inject_parameters``).
        store_widget_state: keep the widgets' state in the notebook's metadata (panels show after a reload).
        allow_errors: record a failing cell's error and go on instead of stopping.

    Returns:
        The executed ``nbformat`` notebook node (not written anywhere: see ``main`` for ``--in-place``).

    Raises:
        LabInputError: for bad arguments, and when a cell fails, a cell or the notebook runs past its limit,
            or the kernel dies; the message names the notebook and the cell.

    Example:
        >>> import nbformat
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
        >>> execute_notebook(nb, cell_timeout=60).cells[0].outputs[0]["text"]
        '42\\n'
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbclient.util import run_sync

    cell_seconds = require_number(cell_timeout, "cell_timeout", low=0, high=MAX_CELL_TIMEOUT_S,
                                  low_inclusive=False, unit="seconds")
    notebook_seconds = None if notebook_timeout is None else require_number(
        notebook_timeout, "notebook_timeout", low=0, high=24 * 3600, low_inclusive=False, unit="seconds")
    extra_env, values = _checked_env(env), _checked_parameters(parameters)
    if isinstance(notebook, (str, os.PathLike)):
        path = require_file(notebook, "notebook")
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as error:
            raise LabInputError(f"{path} is not a readable notebook ({one_line(str(error), 120)}).") from None
        label, folder = path.name, path.resolve().parent
    elif isinstance(notebook, nbformat.NotebookNode):
        nb, label, folder = notebook, "the notebook", Path.cwd()
    else:
        raise LabInputError(f"notebook must be a path to an .ipynb file or an nbformat notebook; "
                            f"got {type(notebook).__name__}.")
    if cwd is not None:
        folder = Path(cwd)
        if not folder.is_dir():
            raise LabInputError(f"cwd={str(folder)!r} is not a folder.")
    if values:
        inject_parameters(nb, **values)
    deadline = None if notebook_seconds is None else time.monotonic() + notebook_seconds

    def timeout_for(_cell) -> int:
        # nbclient wants whole seconds; a cell never gets more than the notebook has left
        left = cell_seconds if deadline is None else min(cell_seconds, deadline - time.monotonic())
        return max(1, math.ceil(left))

    with tempfile.TemporaryDirectory(prefix="course-kernel-") as spec_root:
        client = _client_class()(nb, km=_kernel_manager(Path(spec_root)), timeout_func=timeout_for,
                                 # nbclient's Output-widget hook writes into the widget state even when it is not
                                 # stored (KeyError after a panel cell), so it is always collected and dropped below
                                 store_widget_state=True, allow_errors=allow_errors,
                                 resources={"metadata": {"path": str(folder)}})
        try:
            client.execute(env={**os.environ, **extra_env})
        except CellTimeoutError:
            past_notebook = deadline is not None and time.monotonic() >= deadline - 1
            limit = (f"the notebook ran past its {notebook_seconds:g} s" if past_notebook
                     else f"a cell ran longer than {cell_seconds:g} s")
            raise LabInputError(f"{label}: {limit} (cell {_running_cell(nb)}); raise the limit or make the "
                                "cell faster.") from None
        except CellExecutionError as error:
            lines = [line for line in str(error).strip().splitlines() if line.strip()]
            raise LabInputError(f"{label}: cell {_running_cell(nb)} failed: "
                                f"{one_line(lines[-1] if lines else type(error).__name__, 200)}") from None
        except DeadKernelError:
            raise LabInputError(f"{label}: the kernel died in cell {_running_cell(nb)} (out of memory?).") from None
        finally:
            if client.km.has_kernel:  # a client given its kernel manager leaves the kernel running
                run_sync(client.km.shutdown_kernel)(now=True)
    if not store_widget_state:
        nb.metadata.pop("widgets", None)
    return nb


def _running_cell(nb) -> str:
    """The number of the last code cell that started (1-based among code cells), for messages."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    started = [i for i, c in enumerate(code, 1) if c.get("metadata", {}).get("execution")]
    return str(started[-1]) if started else "?"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.execute NOTEBOOK... [--in-place]``: every argument is checked before any notebook runs."""
    parser = argparse.ArgumentParser(prog="python -m helpers.execute", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help=".ipynb files to execute, in order")
    parser.add_argument("--in-place", action="store_true", help="write each executed notebook back to its file")
    parser.add_argument("--cell-timeout", default="300", help="seconds one cell may run (default 300)")
    parser.add_argument("--notebook-timeout", default=None, help="seconds one notebook may run (default: no limit "
                        "beyond the cells'; make execute's run_with_timeout.py holds each notebook to 600 s)")
    args = parser.parse_args(argv)
    import nbformat

    try:
        cell_timeout = require_number(_number(args.cell_timeout, "--cell-timeout"), "--cell-timeout", low=0,
                                      high=MAX_CELL_TIMEOUT_S, low_inclusive=False, unit="seconds")
        notebook_timeout = None if args.notebook_timeout is None else require_number(
            _number(args.notebook_timeout, "--notebook-timeout"), "--notebook-timeout", low=0, high=24 * 3600,
            low_inclusive=False, unit="seconds")
        paths = [require_file(p, "notebook") for p in args.notebooks]
        for path in paths:
            if path.suffix != ".ipynb":
                raise LabInputError(f"{path} is not an .ipynb notebook.")
            if args.in_place and not os.access(path, os.W_OK):
                raise LabInputError(f"{path} is not writable, so --in-place cannot store it.")
        for path in paths:
            print(f"executing {path}", flush=True)
            start = time.perf_counter()
            nb = execute_notebook(path, cell_timeout=cell_timeout, notebook_timeout=notebook_timeout)
            if args.in_place:
                nbformat.write(nb, path)
            print(f"  took {time.perf_counter() - start:.0f} s", flush=True)
    except LabInputError as error:
        print(f"execute: {error}", file=sys.stderr)
        return 2
    return 0


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise LabInputError(f"{name} must be a number of seconds; got {text!r}.") from None


if __name__ == "__main__":
    sys.exit(main())
