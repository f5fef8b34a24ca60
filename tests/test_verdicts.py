"""helpers.verdicts: the words come from the comparison; helpers.verdict_runs: margins over runs."""
import json

import pytest
import torch

from helpers.validation import LabInputError
from helpers.verdict_runs import busy_cores, combine, format_table, read_run
from helpers.verdicts import OUT_VARIABLE, VerdictBook

TIMING = dict(quantity="loop / reshape time", evidence="timing", basis="one thread's CPU time")
EXACT = dict(quantity="torch.equal", evidence="deterministic", basis="float64")


def book_with_belief(section=1, **belief):
    book = VerdictBook("01")
    book.belief(section, "a loop is slower than one reshape", **belief)
    return book


@pytest.mark.parametrize("measured, comparison, threshold, holds", [
    (6.0, ">", 5, True), (5.0, ">", 5, False), (5.0, ">=", 5, True), (1.0, "<", 2, True), (2.0, "<", 2, False),
    (2.0, "<=", 2, True), (3, "==", 3, True), (True, "==", True, True), (False, "==", True, False),
    (torch.tensor(7.0), ">", 5, True),
])
def test_the_comparison_decides_the_word(capsys, measured, comparison, threshold, holds):
    book = book_with_belief()
    book.check(1, "a claim", measured, comparison, threshold, **EXACT)
    line = capsys.readouterr().out.strip()
    assert line.startswith("Verdict: holds — " if holds else "Verdict: does not hold — ")
    assert book.records[0].holds is holds


def test_the_printed_line_never_shows_the_measurement(capsys):
    book = book_with_belief()
    book.check(1, "the loop is more than 5× slower", 7.123456, ">", 5, **TIMING)
    assert "7.12" not in capsys.readouterr().out


@pytest.mark.parametrize("outcomes, roles, verdict", [
    ((True, True), ("belief", "belief"), "True"),
    ((False, False), ("belief", "belief"), "False"),
    ((True, False), ("belief", "belief"), "Partly"),
    ((True,), ("against",), "False"),
    ((False, True), ("against", "belief"), "True"),
    ((True, False), ("belief", "context"), "True"),
])
def test_the_section_verdict_follows_the_stated_rule(outcomes, roles, verdict):
    book = book_with_belief()
    for i, (holds, role) in enumerate(zip(outcomes, roles, strict=True)):
        book.check(1, f"claim {i}", holds, "==", True, role=role, **EXACT)
    assert book.verdict(1) == verdict


def test_re_running_a_cell_replaces_its_record():
    book = book_with_belief()
    book.check(1, "a claim", False, "==", True, **EXACT)
    book.check(1, "a claim", True, "==", True, **EXACT)
    assert [r.holds for r in book.records] == [True]


def test_summary_lists_every_section_with_its_belief(capsys):
    book = book_with_belief(section=1, article="000")
    book.check(1, "claim one", True, "==", True, **EXACT)
    book.belief(2, "a second question")
    book.check(2, "claim two", 1.0, ">", 2, **TIMING)
    capsys.readouterr()
    book.summary()
    out = capsys.readouterr().out
    assert "§1  “a loop is slower than one reshape” (article 000:" in out
    assert "§2  a second question (the course's question)" in out
    assert out.count("verdict: ") == 2 and "verdict: True" in out and "verdict: False" in out


@pytest.mark.parametrize("call, match", [
    (lambda b: b.check(2, "no belief", True, "==", True, **EXACT), "no belief"),
    (lambda b: b.check(1, "nan", float("nan"), ">", 1, **TIMING), "NaN"),
    (lambda b: b.check(1, "bool with >", True, ">", 1, **EXACT), "bool"),
    (lambda b: b.check(1, "timing equality", 2.0, "==", 2.0, **TIMING), "timing"),
    (lambda b: b.check(1, "measured 0.31234 in words", 1.0, ">", 0.5, **TIMING), "measured-looking"),
    (lambda b: b.check(1, "bad op", 1.0, "!=", 0.5, **TIMING), "comparison"),
    (lambda b: b.check(1, "bad evidence", 1.0, ">", 0.5, quantity="q", evidence="clock", basis="b"), "evidence"),
    (lambda b: b.check(1, "a list", [1.0], ">", 0.5, **TIMING), "number"),
    (lambda b: b.belief(3, "quoted", article="999"), "article"),
    (lambda b: b.verdict(1), "no check"),
])
def test_bad_input_is_refused_with_what_to_do(call, match):
    with pytest.raises(LabInputError, match=match):
        call(book_with_belief())


def test_records_are_handed_over_to_make_verdicts(tmp_path, monkeypatch):
    out = tmp_path / "run.jsonl"
    monkeypatch.setenv(OUT_VARIABLE, str(out))
    book = book_with_belief()
    book.check(1, "the loop is more than 5× slower", 7.5, ">", 5, **TIMING)
    entry = read_run(out)["01 §1: the loop is more than 5× slower"]
    assert entry["measured"] == 7.5 and entry["holds"] is True and entry["margin"] == pytest.approx(1.5)


def _entry(measured, holds, margin, evidence="timing"):
    return {"notebook": "02", "section": 5, "claim": "c", "evidence": evidence, "basis": "b", "quantity": "q",
            "comparison": ">", "threshold": 10, "measured": measured, "holds": holds, "margin": margin}


def test_combine_flags_flips_thin_timing_margins_and_missing_runs():
    flipped = combine([{"k": _entry(15.0, True, 1.5)}, {"k": _entry(9.0, False, 1.1)}])[0]
    assert flipped["outcomes"] == [True, False] and "outcome changed between runs" in flipped["problems"]
    thin = combine([{"k": _entry(15.0, True, 1.5)}, {"k": _entry(14.0, True, 1.4)}])[0]
    assert thin["worst_margin"] == 1.4 and thin["problems"] == ["timing margin below 1.5"]
    exact = combine([{"k": _entry(True, True, None, "deterministic")}] * 3)[0]
    assert exact["problems"] == [] and exact["worst_margin"] is None
    missing = combine([{"k": _entry(15.0, True, 1.5)}, {}])[0]
    assert missing["problems"] == ["missing from 1 run(s)"]
    assert "✗" in format_table([missing]) and "T?" in format_table([missing])


def test_verdict_runs_refuses_bad_arguments_before_running(capsys):
    from helpers.verdict_runs import main
    assert main(["--runs", "0"]) == 2
    assert main(["--loaded-run", "5", "--runs", "3"]) == 2
    assert "error:" in capsys.readouterr().err


def test_busy_cores_are_stopped_afterwards():
    with busy_cores(2) as spinners:
        assert all(p.poll() is None for p in spinners)
    assert all(p.returncode is not None for p in spinners)
    json.dumps([p.returncode for p in spinners])


def test_the_margins_file_is_not_read_as_a_timing_file(tmp_path, capsys):
    from helpers.integrity import write_json_signed
    from helpers.reference import load_reference
    write_json_signed(tmp_path / "verdicts.json", {"meta": {}, "verdicts": []}, writer="make verdicts")
    assert load_reference("nb01.length_sweep", device="cpu", directory=tmp_path) == []
    assert "skipped" not in capsys.readouterr().err
