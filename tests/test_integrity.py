"""helpers.integrity: recorded JSON files carry the SHA-256 their recording command wrote; any later change is
refused in one line naming that command."""
import json

import pytest

from helpers.integrity import INTEGRITY_KEY, DataFileError, canonical_digest, read_json_verified, write_json_signed
from helpers.validation import LabInputError

DOCUMENT = {"meta": {"device": "cpu", "date": "2026-12-01"}, "runs": [{"loss": 0.25, "steps": [1, 2]}]}


def test_round_trip_keeps_the_document_and_names_the_writer(tmp_path):
    path = write_json_signed(tmp_path / "sub" / "run.json", DOCUMENT, writer="make demo")
    stored = json.loads(path.read_text())
    assert stored[INTEGRITY_KEY]["written_by"] == "make demo" and len(stored[INTEGRITY_KEY]["sha256"]) == 64
    assert read_json_verified(path, "make demo") == DOCUMENT
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # written atomically, no temporary file left


def test_the_digest_ignores_key_order_and_formatting_but_not_values():
    reordered = {"runs": DOCUMENT["runs"], "meta": {"date": "2026-12-01", "device": "cpu"}}
    assert canonical_digest(reordered) == canonical_digest(DOCUMENT)
    assert canonical_digest({**DOCUMENT, "meta": {"device": "cuda", "date": "2026-12-01"}}) != canonical_digest(DOCUMENT)


@pytest.mark.parametrize("edit, reason", [
    (lambda d: d["meta"].update(device="cuda"), "changed after it was recorded"),
    (lambda d: d["runs"][0].update(loss=0.26), "changed after it was recorded"),
    (lambda d: d["runs"][0].update(curve=d["runs"][0].pop("loss")), "changed after it was recorded"),
    (lambda d: d.pop(INTEGRITY_KEY), "no SHA-256"),
    (lambda d: d[INTEGRITY_KEY].update(sha256=None), "no SHA-256"),
])
def test_an_edited_file_is_refused_in_one_line_naming_the_command(tmp_path, edit, reason):
    path = write_json_signed(tmp_path / "run.json", DOCUMENT, writer="make demo")
    stored = json.loads(path.read_text())
    edit(stored)
    path.write_text(json.dumps(stored, indent=1))
    with pytest.raises(DataFileError) as refused:
        read_json_verified(path, "make demo")
    message = str(refused.value)
    assert reason in message and message.endswith("re-record it with make demo.") and "\n" not in message
    assert isinstance(refused.value, LabInputError) and refused.value.path == path


@pytest.mark.parametrize("content, reason", [(b"{", "not valid JSON"), (b"\xff\xfe", "not UTF-8"),
                                             (b"[1]", "not an object"), (b'{"x": NaN}', "holds NaN")])
def test_damaged_files_are_refused(tmp_path, content, reason):
    path = tmp_path / "run.json"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=reason):
        read_json_verified(path, "make demo")
    with pytest.raises(DataFileError, match="does not exist"):
        read_json_verified(tmp_path / "missing.json", "make demo")


def test_a_value_json_cannot_store_is_refused_before_writing(tmp_path):
    with pytest.raises(LabInputError, match="finite numbers only"):
        write_json_signed(tmp_path / "run.json", {"loss": float("nan")}, writer="make demo")
    with pytest.raises(LabInputError, match="writer"):
        write_json_signed(tmp_path / "run.json", DOCUMENT, writer="")
    assert not (tmp_path / "run.json").exists()
