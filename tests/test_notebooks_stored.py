"""Strict nbval passes trivially on a notebook stored unexecuted, so check how each one is stored."""
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from notebook_hygiene import ignores_output, solution_cells, tidy_text  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
STORED_OUTPUT_LIMIT = 3_000_000  # bytes of outputs per notebook; figures are PNG, kept modest


def _code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _ids(path):
    return path.name


pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks yet")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_stored_executed_top_to_bottom(path):
    counts = [c["execution_count"] for c in _code_cells(path)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name} is not stored as one top-to-bottom run (execution counts {counts}); run 'make execute'")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_no_stored_errors(path):
    for i, cell in enumerate(_code_cells(path)):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{path.name} code cell {i} stores an error"
            assert output.get("name") != "stderr" or "Traceback" not in "".join(output.get("text", ""))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_figures_are_png_and_outputs_lean(path):
    size = 0
    for cell in _code_cells(path):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            assert "image/svg+xml" not in data, f"{path.name}: store figures as PNG (SVG embeds object ids)"
            size += len(json.dumps(output))
    assert size < STORED_OUTPUT_LIMIT, f"{path.name} stores {size / 1e6:.1f} MB of outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_follows_the_course_skeleton(path):
    cells = json.loads(path.read_text())["cells"]
    markdown = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    for heading in ("What you will learn", "Prerequisites", "Summary", "Exercises", "Solutions"):
        assert heading in markdown, f"{path.name} lacks the '{heading}' section of the shared skeleton"
    code = _code_cells(path)
    tagged = [i for i, c in enumerate(code) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one code cell must be tagged 'parameters' (make bench injects there)"
    parameters = "".join(code[tagged[0]]["source"])
    for name in ("SCALE", "DEVICE", "BENCH_OUT"):
        assert re.search(rf"^{name}\s*=", parameters, flags=re.M), f"{path.name}: the parameters cell must set {name}"
    setup = [i for i, c in enumerate(code) if "seed_everything" in "".join(c["source"])]
    assert setup and setup[0] == tagged[0] + 1, (
        f"{path.name}: the setup cell (seed, threads, device, versions) must follow the parameters cell")
    setup_source = "".join(code[setup[0]]["source"])
    assert "set_threads" in setup_source and "pick_device(DEVICE)" in setup_source


def _sections(cells):
    """``[(heading, [cells])]`` for every numbered section ``## N. ...``, up to the next level-2 heading."""
    sections, current = [], None
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("## "):
                    current = (line, []) if re.match(r"^##\s+\d+\.", line) else None
                    if current:
                        sections.append(current)
        elif current is not None:
            current[1].append(cell)
    return sections


def _text(cell):
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream")


VERDICT_LINE = re.compile(r"^Verdict: (holds|does not hold) — .+  \[(deterministic|timing), .+\]$")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_every_numbered_section_ends_in_a_checked_verdict(path):
    sections = _sections(json.loads(path.read_text())["cells"])
    assert sections, f"{path.name} has no numbered sections '## 1. ...'"
    for heading, cells in sections:
        checked = [c for c in cells if not ignores_output(c)]
        verdicts = [c for c in checked if re.search(r"^Verdict: ", _text(c), flags=re.M)]
        assert verdicts, f"{path.name}: {heading!r} has no checked cell printing 'Verdict: ...'"
        assert checked[-1] is verdicts[-1], (
            f"{path.name}: {heading!r} must end with its checked verdict cell (only ignored cells may follow it)")
        for line in re.findall(r"^Verdict: .*$", _text(verdicts[-1]), flags=re.M):
            assert not re.search(r"\d\.\d{3,}|\de-\d", line), f"{path.name}: a raw measured number in {line!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_every_verdict_comes_from_a_record(path):
    """Verdict lines are printed by helpers.verdicts (one polarity, the test named), never typed in a cell."""
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        assert not re.search(r"[\"']Verdict", source), (
            f"{path.name} cell {i} types a 'Verdict' string; decide it with verdicts.check(...) instead")
        assert not re.search(r"'[^'{}]{3,}' is (False|True)", source), (
            f"{path.name} cell {i} prints a conclusion ('... is False') that no measurement decides")
        for line in re.findall(r"^Verdict: .*$", _text(cell), flags=re.M):
            assert VERDICT_LINE.match(line), f"{path.name} cell {i}: {line!r} is not a verdict record's line"


def _summary_cell(cells):
    at = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
              and re.search(r"^## Summary", "".join(c["source"]), flags=re.M))
    following = [c for c in cells[at + 1:] if c["cell_type"] == "code"]
    return cells[at], (following[0] if following else None)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_summary_is_generated_from_the_records(path):
    cells = json.loads(path.read_text())["cells"]
    heading, code = _summary_cell(cells)
    assert "| Belief" not in "".join(heading["source"]), f"{path.name}: the summary is a typed table"
    assert code is not None and ".summary()" in "".join(code["source"]), (
        f"{path.name}: the cell after '## Summary' must print verdicts.summary()")
    assert not ignores_output(code), f"{path.name}: the summary cell must be checked by nbval (no ignore)"
    output = _text(code)
    numbered = [int(re.match(r"^##\s+(\d+)\.", h).group(1)) for h, _ in _sections(cells)]
    summarised = [int(n) for n in re.findall(r"^§(\d+)  ", output, flags=re.M)]
    assert summarised == numbered, f"{path.name}: summary lists sections {summarised}, the notebook has {numbered}"
    verdicts = re.findall(r"^    verdict: (\S+)$", output, flags=re.M)
    assert len(verdicts) == len(numbered) and set(verdicts) <= {"True", "False", "Partly"}, verdicts


SEEDS = ROOT.parent / "shared" / "seeds"


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("\u2019", "'")).split())


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the articles (../shared/seeds) are not beside this checkout")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_quoted_beliefs_are_the_articles_words(path):
    """A belief in quotation marks is the article's exact words, in the article it names."""
    articles = {f.name[:3]: _normalised(f.read_text(encoding="utf-8", errors="replace")) for f in SEEDS.glob("*.txt")}
    cells = json.loads(path.read_text())["cells"]
    _, code = _summary_cell(cells)
    for quote, article in re.findall(r"^§\d+  “(.+)” \(article (\d{3}):", _text(code), flags=re.M):
        for part in re.split(r"…|\.\.\.", quote):
            assert _normalised(part) in articles[article], f"{path.name}: article {article} does not say {part!r}"
    everything = " ".join(articles.values())
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] != "markdown" or "Belief" not in source:
            continue
        for quote in re.findall(r"[\u201c\"]([^\u201d\"]{12,})[\u201d\"]", source):
            for part in re.split(r"\u2026|\.\.\.", quote):
                if len(_normalised(part).split()) >= 3:
                    assert _normalised(part) in everything, (
                        f"{path.name} cell {i} quotes {part.strip()[:60]!r} as a belief; no article says it")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_stored_tidy(path):
    """nbval tags instead of visible comment lines, solutions folded, no timestamps or random widget ids."""
    text = path.read_text(encoding="utf-8")
    tidied, changes = tidy_text(text, path.name)
    tidy = tidied == text  # compared here: pytest's diff of two notebooks would bury the message
    assert tidy, (f"{path.name} is not tidy ({', '.join(f'{k}: {v}' for k, v in changes.items() if v)}): "
                            "run 'python scripts/notebook_hygiene.py --write' (make execute does)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_solutions_heading_has_cells_to_fold(path):
    assert solution_cells(json.loads(path.read_text())), f"{path.name}: nothing under its '### Solutions' heading"


MARGINS = ROOT / "data" / "reference" / "verdicts.json"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_every_stored_verdict_has_its_margins_recorded(path):
    """`make verdicts` ran on the notebook as stored: each verdict it prints has held the same way in every run."""
    from helpers.integrity import read_json_verified

    recorded = read_json_verified(MARGINS, "make verdicts")
    entries = {(e["notebook"], e["claim"]): e for e in recorded["verdicts"]}
    for cell in json.loads(path.read_text())["cells"]:
        for word, claim in re.findall(r"^Verdict: (holds|does not hold) — (.+?)  \[", _text(cell), flags=re.M):
            entry = entries.get((path.name[:2], claim))
            assert entry, f"{path.name}: no margins for {claim!r}; run 'make verdicts' before storing the notebook"
            assert not entry["problems"], f"{path.name}: {claim!r}: {entry['problems']}"
            assert set(entry["outcomes"]) == {word == "holds"}, (
                f"{path.name}: {claim!r} printed {word!r}, but make verdicts recorded {entry['outcomes']}")
