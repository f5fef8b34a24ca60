"""Recorded JSON files under ``data/`` that cannot lie: written with a SHA-256 by the command that records them,
refused on load when they no longer match.

Every command that records a file (``make bench``, ``scripts/record_long_range.py``, and any later one)
writes it through ``write_json_signed``, which stores the SHA-256 of the document's canonical serialisation
(sorted keys, no whitespace) under the key ``"integrity"``. ``read_json_verified`` recomputes it: a changed
digit, a renamed key or a changed device word after recording is refused with one line naming the command
that records the file again. The digest guards against edits and damage, not against someone who
recomputes it on purpose.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from helpers.validation import LabInputError

INTEGRITY_KEY = "integrity"
MAX_FILE_BYTES = 20 * 2**20  # recorded files are a few hundred kB; anything this large is not one


class DataFileError(LabInputError):
    """A recorded data file that is missing, damaged, edited after recording, or of the wrong layout.

    ``str()`` is one line: the file, what is wrong (``reason``) and the command that records it again.
    """

    def __init__(self, path: str | os.PathLike, reason: str, rerecord: str):
        self.path, self.reason, self.rerecord = Path(path), reason, rerecord
        super().__init__(f"{self.path}: {reason}; re-record it with {rerecord}.")


def canonical_digest(document: Mapping) -> str:
    """SHA-256 of ``document`` without its ``"integrity"`` entry, serialised canonically (sorted keys, compact).

    Args:
        document: a JSON-compatible mapping (finite numbers only).

    Returns:
        The hex digest.

    Example:
        >>> canonical_digest({"b": 1, "a": [1.5]}) == canonical_digest({"a": [1.5], "b": 1, "integrity": {}})
        True
    """
    if not isinstance(document, Mapping):
        raise LabInputError(f"document must be a dict; got {type(document).__name__}.")
    body = {key: value for key, value in document.items() if key != INTEGRITY_KEY}
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as error:  # NaN or infinity: JSON has no such numbers, so refuse to record them
        raise LabInputError(f"the document holds a value JSON cannot store exactly ({error}); record finite "
                            "numbers only.") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_json_signed(path: str | os.PathLike, document: Mapping, *, writer: str) -> Path:
    """Write ``document`` as JSON with its SHA-256 under ``"integrity"``, atomically (temporary file, rename).

    Args:
        path: the file to (over)write.
        document: the recorded data (a JSON-compatible dict with finite numbers).
        writer: the command that records this file, stored beside the digest and named when it is refused,
            e.g. ``"make bench"``.

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "run.json"
        >>> read_json_verified(write_json_signed(target, {"runs": [1, 2]}, writer="make demo"), "make demo")["runs"]
        [1, 2]
    """
    if not isinstance(writer, str) or not writer.strip():
        raise LabInputError("writer must name the command that records the file, e.g. 'make bench'.")
    body = {key: value for key, value in dict(document).items() if key != INTEGRITY_KEY}
    signed = {**body, INTEGRITY_KEY: {"sha256": canonical_digest(body), "written_by": writer,
                                      "covers": "every other top-level key, as JSON with sorted keys and no spaces"}}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(signed, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a recorded file is for every reader of the repo
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return out


def read_json_verified(path: str | os.PathLike, rerecord: str) -> dict:
    """Read a file written by ``write_json_signed`` and check its SHA-256; refuse it in one line otherwise.

    Args:
        path: the file.
        rerecord: the command that records it again, named in every refusal, e.g. ``"make bench"``.

    Returns:
        The document without its ``"integrity"`` entry.

    Raises:
        DataFileError: when the file is missing, unreadable, not JSON, not an object, unsigned, or changed
            since it was recorded.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "run.json"
        >>> _ = target.write_text('{"runs": [1]}')
        >>> try:
        ...     read_json_verified(target, "make demo")
        ... except DataFileError as error:
        ...     print(str(error).split(": ", 1)[1])
        it has no SHA-256 from the command that records it, so it was not written by it; re-record it with make demo.
    """
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise DataFileError(file, f"it is {file.stat().st_size:,} bytes, too large to be a recorded file", rerecord)
        data = json.loads(file.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except FileNotFoundError:
        raise DataFileError(file, "it does not exist", rerecord) from None
    except OSError as error:
        raise DataFileError(file, f"it cannot be read ({error.strerror or error})", rerecord) from None
    except UnicodeDecodeError:
        raise DataFileError(file, "it is not UTF-8 text", rerecord) from None
    except json.JSONDecodeError as error:
        raise DataFileError(file, f"it is not valid JSON ({error.msg} at line {error.lineno})", rerecord) from None
    except (RecursionError, ValueError) as error:
        raise DataFileError(file, f"it is not a recorded file ({str(error) or 'nested too deeply'})", rerecord
                            ) from None
    if not isinstance(data, dict):
        raise DataFileError(file, f"the top level is a {type(data).__name__}, not an object", rerecord)
    stamp = data.get(INTEGRITY_KEY)
    if not isinstance(stamp, dict) or not isinstance(stamp.get("sha256"), str):
        raise DataFileError(file, "it has no SHA-256 from the command that records it, so it was not written by "
                            "it", rerecord)
    if canonical_digest(data) != stamp["sha256"]:
        raise DataFileError(file, "it was changed after it was recorded (its SHA-256 no longer matches)", rerecord)
    return {key: value for key, value in data.items() if key != INTEGRITY_KEY}


def _refuse_constant(name: str) -> float:
    raise ValueError(f"it holds {name}, which a recording never writes")
