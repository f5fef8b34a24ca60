"""Checked verdicts as data: the measurement writes the words.

Every numbered section of a notebook states a **belief** and ends in checks that decide it. Each check is
a :class:`VerdictRecord`: a claim (a sentence that is either true or false), the measured quantity, the
comparison and threshold that decide it, the kind of evidence, and the outcome. The printed line is made
from the record, so it cannot state a conclusion the comparison did not decide, and it never shows the
measured number (that goes in an ignored cell beside it, since it varies between runs and machines):

    Verdict: holds — <claim>  [<evidence>: <quantity> <comparison> <threshold>]
    Verdict: does not hold — <claim>  [...]

One polarity for the whole course: a claim *holds* or *does not hold*; a belief is **True**, **False** or
**Partly** by one rule (:data:`SUMMARY_RULE`), applied by :meth:`VerdictBook.summary`, which prints the
notebook's summary from the records of this run. ``make verdicts`` (``helpers.verdict_runs``) collects the
records of several runs through the environment variable :data:`OUT_VARIABLE` and shows every margin.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
from dataclasses import asdict, dataclass

from helpers.validation import LabInputError

OUT_VARIABLE = "RNN_LAB_VERDICTS_OUT"
EVIDENCE = ("deterministic", "timing")
COMPARISONS = (">", ">=", "<", "<=", "==")
ROLES = ("belief", "against", "context")
SUMMARY_RULE = ("a belief is True when every check that bears on it comes out its way (✓), False when none does "
                "(✗), Partly otherwise")
# The five articles the course answers (../shared/seeds), cited by number when a belief quotes one verbatim.
ARTICLES = {
    "000": "Does PyTorch's `for` loop vs. reshaping for 'Time Distributed' layers yield identical forward "
           "passes but different training outcomes?",
    "001": "How can I implement a PyTorch LSTM without using a `for` loop?",
    "002": "Why can't PyTorch calculate gradients within a loop?",
    "003": "How to iterate over an RNN cell in PyTorch?",
    "004": "What are the key differences between PyTorch Seq layers implementations?",
}
_RAW_NUMBER = re.compile(r"\d\.\d{3,}|\de-\d")


@dataclass(frozen=True)
class Belief:
    """What a section puts to the test: the article's own words (``article`` set) or the course's question."""

    notebook: str
    section: int
    text: str
    article: str | None = None

    def cited(self) -> str:
        """The belief as the summary shows it: quoted with its article, or marked as the course's question.

        Example:
            >>> Belief("01", 1, "identical forward passes", "000").cited()[:39]
            '“identical forward passes” (article 000'
        """
        if self.article is None:
            return f"{self.text} (the course's question)"
        return f"“{self.text}” (article {self.article}: {ARTICLES[self.article]})"


@dataclass(frozen=True)
class VerdictRecord:
    """One checked verdict: a claim, how it is decided, and what this run measured.

    ``role`` says how the claim bears on its section's belief: ``"belief"`` (the claim is an instance of the
    belief: holding supports it), ``"against"`` (holding contradicts it) or ``"context"`` (a fact the section
    checks that does not decide the belief).
    """

    notebook: str
    section: int
    claim: str
    quantity: str
    comparison: str
    threshold: float | int | bool
    measured: float | int | bool
    evidence: str
    basis: str
    role: str
    holds: bool

    @property
    def key(self) -> str:
        """A stable name for this check across runs: ``"01 §5: <claim>"``."""
        return f"{self.notebook} §{self.section}: {self.claim}"

    @property
    def supports_belief(self) -> bool | None:
        """Whether this outcome speaks for the section's belief (None for a context check)."""
        if self.role == "context":
            return None
        return self.holds if self.role == "belief" else not self.holds

    @property
    def margin(self) -> float | None:
        """How far the measurement sits on its deciding side: ``measured / threshold`` or its inverse, ≥ 1.

        A margin of 1.5 means a 1.5× change of the measured value would be needed to flip the outcome.
        None where no ratio means anything (equality, a zero or negative threshold or measurement).

        Example:
            >>> r = _decide("01", 5, "much slower", "loop / reshape", 6.0, ">", 4, "timing", "CPU time", "belief")
            >>> r.holds, r.margin
            (True, 1.5)
        """
        if self.comparison == "==" or isinstance(self.measured, bool) or isinstance(self.threshold, bool):
            return None
        measured, threshold = float(self.measured), float(self.threshold)
        if not (measured > 0 and threshold > 0 and math.isfinite(measured)):
            return None
        above = measured / threshold
        return above if (self.comparison in (">", ">=")) == self.holds else 1 / above

    def line(self) -> str:
        """The printed verdict: outcome word, claim, and how it was decided; never the measured number.

        Example:
            >>> _decide("01", 1, "the outputs agree", "max |diff|", 1e-7, "<", 1e-5, "deterministic",
            ...         "float32, 8 shapes", "belief").line()
            'Verdict: holds — the outputs agree  [deterministic, float32, 8 shapes: max |diff| < 10⁻⁵]'
        """
        word = "holds" if self.holds else "does not hold"
        if isinstance(self.measured, bool):
            test = self.quantity if self.threshold else f"not ({self.quantity})"
        else:
            test = f"{self.quantity} {self.comparison} {_format_threshold(self.threshold)}"
        return f"Verdict: {word} — {self.claim}  [{self.evidence}, {self.basis}: {test}]"


def _format_threshold(value: float | int) -> str:
    """A fixed threshold, printed compactly; powers of ten as ``10⁻⁶`` (never a raw-looking ``1e-06``).

    Example:
        >>> [_format_threshold(v) for v in (5, 1.5, 1e-6, 2.5e-3, 0.05, 1e6)]
        ['5', '1.5', '10⁻⁶', '2.5×10⁻³', '0.05', '10⁶']
    """
    if isinstance(value, int) or value == 0 or 1e-2 <= abs(value) < 1e5:
        return f"{value:g}"
    mantissa, exponent = f"{value:e}".split("e")
    mantissa = f"{float(mantissa):g}"
    power = "10" + str(int(exponent)).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return power if mantissa == "1" else f"{mantissa}×{power}"


def _require_text(value: object, name: str, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LabInputError(f"{name} must be a non-empty sentence, e.g. {example!r}; got {value!r}.")
    if _RAW_NUMBER.search(value):
        raise LabInputError(f"{name} {value!r} contains a measured-looking number; a verdict's words hold only "
                            "fixed thresholds and sizes (put measured numbers in an ignored cell).")
    return value.strip()


def _require_section(section: object) -> int:
    if isinstance(section, bool) or not isinstance(section, int) or section < 1:
        raise LabInputError(f"section must be the section's number (1, 2, …); got {section!r}.")
    return section


def _plain_number(value: object, name: str) -> float | int | bool:
    """A Python bool/int/float from a number, a one-element tensor or a NumPy scalar; refuse anything else."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "numel", lambda: 1)() == 1:
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            raise LabInputError(f"{name} is NaN, so no comparison can decide the verdict; the measurement failed "
                                "(look at the cell that computed it).")
        return value
    raise LabInputError(f"{name} must be a number or a bool (a one-element tensor is fine); got "
                        f"{type(value).__name__}.")


def _decide(notebook: str, section: int, claim: str, quantity: str, measured: object, comparison: str,
            threshold: object, evidence: str, basis: str, role: str) -> VerdictRecord:
    """Check every field and decide the outcome; the one place a comparison is evaluated."""
    claim = _require_text(claim, "claim", "the loop is more than 5× slower than the reshape at width 16")
    quantity = _require_text(quantity, "quantity", "loop time / reshape time")
    basis = _require_text(basis, "basis", "one thread's CPU time, interleaved medians")
    if comparison not in COMPARISONS:
        raise LabInputError(f"comparison must be one of {COMPARISONS}; got {comparison!r}.")
    if evidence not in EVIDENCE:
        raise LabInputError(f"evidence must be 'deterministic' (counts, bytes, equality, error against float64, a "
                            f"seeded run) or 'timing'; got {evidence!r}.")
    if role not in ROLES:
        raise LabInputError(f"role must be one of {ROLES}; got {role!r}.")
    measured = _plain_number(measured, "measured")
    threshold = _plain_number(threshold, "threshold")
    if isinstance(measured, bool) != isinstance(threshold, bool):
        raise LabInputError("a bool measurement is compared with == True or == False, and a number with a number; "
                            f"got measured {measured!r} against threshold {threshold!r}.")
    if isinstance(measured, bool) and comparison != "==":
        raise LabInputError(f"a bool measurement is decided with '==', not {comparison!r}.")
    if evidence == "timing" and (isinstance(measured, bool) or comparison == "=="):
        raise LabInputError("a timing verdict compares a ratio of times with a threshold (> or <), so its margin "
                            "can be checked by make verdicts; got a bool or '=='.")
    holds = {">": measured > threshold, ">=": measured >= threshold, "<": measured < threshold,
             "<=": measured <= threshold, "==": measured == threshold}[comparison]
    return VerdictRecord(notebook, section, claim, quantity, comparison, threshold, measured, evidence, basis, role,
                         bool(holds))


class VerdictBook:
    """A notebook's beliefs and checked verdicts, in the order the run decided them.

    Args:
        notebook: the notebook's number, ``"01"`` … ``"05"``.

    Example:
        >>> book = VerdictBook("01")
        >>> book.belief(5, "a loop over time is much slower than one reshape")
        >>> book.check(5, "the loop is more than 5× slower at width 16", 7.5, ">", 5,
        ...            quantity="loop / reshape time", evidence="timing", basis="one thread's CPU time")
        Verdict: holds — the loop is more than 5× slower at width 16  [timing, one thread's CPU time: loop / reshape time > 5]
        >>> book.check(5, "the loop is more than 2× slower at width 256", 1.1, ">", 2,
        ...            quantity="loop / reshape time", evidence="timing", basis="one thread's CPU time")
        Verdict: does not hold — the loop is more than 2× slower at width 256  [timing, one thread's CPU time: loop / reshape time > 2]
        >>> book.verdict(5)
        'Partly'
    """

    def __init__(self, notebook: str):
        if not (isinstance(notebook, str) and re.fullmatch(r"\d\d", notebook)):
            raise LabInputError(f"notebook must be its two-digit number, e.g. '01'; got {notebook!r}.")
        self.notebook = notebook
        self.beliefs: dict[int, Belief] = {}
        self._records: dict[tuple[int, str], VerdictRecord] = {}

    @property
    def records(self) -> list[VerdictRecord]:
        """Every check of this run, by section (re-running a cell replaces its earlier record)."""
        return sorted(self._records.values(), key=lambda r: r.section)

    def belief(self, section: int, text: str, article: str | None = None) -> None:
        """Register what section ``section`` puts to the test.

        Args:
            section: the section's number.
            text: the article's exact words when ``article`` is given (they are shown in quotation marks), else
                the course's own question, in its own words.
            article: ``"000"`` … ``"004"``, the article quoted (see :data:`ARTICLES`), or None.
        """
        section = _require_section(section)
        text = _require_text(text, "belief", "identical forward passes")
        if article is not None and article not in ARTICLES:
            raise LabInputError(f"article must be one of {sorted(ARTICLES)} (the article quoted) or None for the "
                                f"course's own question; got {article!r}.")
        self.beliefs[section] = Belief(self.notebook, section, text, article)

    def check(self, section: int, claim: str, measured: object, comparison: str, threshold: object, *,
              quantity: str, evidence: str, basis: str, role: str = "belief") -> None:
        """Decide one claim from this run's measurement, print its verdict line and keep the record.

        Args:
            section: the section's number (its belief must be registered first).
            claim: a sentence that is true or false, with its fixed threshold in words, e.g. "the loop is more
                than 5× slower than the reshape at width 16". No measured number.
            measured: the measured value: a number, a one-element tensor, or a bool (equality, a yes/no fact).
            comparison: ``">"``, ``">="``, ``"<"``, ``"<="`` or ``"=="``; the claim holds when
                ``measured <comparison> threshold``.
            threshold: the fixed number (or ``True``/``False``) the measurement is compared with.
            quantity: what was measured, with its unit where it has one, e.g. ``"loop time / reshape time"``.
            evidence: ``"deterministic"`` (counts, bytes, equality, error against float64, a seeded run) or
                ``"timing"``.
            basis: how: ``"operator counts (profiler)"``, ``"one thread's CPU time, interleaved medians"``.
            role: ``"belief"`` (default), ``"against"`` or ``"context"``; see :class:`VerdictRecord`.

        Raises:
            LabInputError: on a missing belief, a NaN measurement, an unknown comparison or evidence, or words
                that contain a measured-looking number.
        """
        section = _require_section(section)
        if section not in self.beliefs:
            raise LabInputError(f"section {section} has no belief yet: call belief({section}, ...) first, so the "
                                "summary can say what this check decides.")
        record = _decide(self.notebook, section, claim, quantity, measured, comparison, threshold, evidence, basis,
                         role)
        self._records[section, record.claim] = record
        print(record.line())
        _hand_over(record)

    def verdict(self, section: int) -> str:
        """The section's one-word verdict on its belief, by :data:`SUMMARY_RULE`: True, False or Partly."""
        bearing = [r.supports_belief for r in self.records if r.section == section and r.role != "context"]
        if not bearing:
            raise LabInputError(f"section {section} has no check that bears on its belief (only context checks, or "
                                "none); give at least one check role 'belief' or 'against'.")
        return "True" if all(bearing) else ("False" if not any(bearing) else "Partly")

    def rows(self) -> list[tuple[int, str, str, str]]:
        """``(section, belief, verdict, why)`` for every section, generated from the records.

        Raises:
            LabInputError: when a belief has no checks or checks have no belief.
        """
        sections = sorted({r.section for r in self.records} | set(self.beliefs))
        rows = []
        for section in sections:
            if section not in self.beliefs:
                raise LabInputError(f"section {section} has checks but no belief.")
            checks = [r for r in self.records if r.section == section and r.role != "context"]
            why = "; ".join(f"{'✓' if r.supports_belief else '✗'} {'holds' if r.holds else 'does not hold'}: {r.claim}"
                            for r in checks)
            rows.append((section, self.beliefs[section].cited(), self.verdict(section), why))
        return rows

    def summary(self) -> None:
        """Print the notebook's summary from this run's records: belief, one-word verdict, why, per section.

        Each check that bears on a belief is listed in the "why" line with its outcome, marked ✓ when that
        outcome speaks for the belief and ✗ when it speaks against it.

        Example:
            >>> book = VerdictBook("03")
            >>> book.belief(1, "a loss summed in a loop keeps only the last term")
            >>> book.check(1, "x.grad equals the gradient of every term", True, "==", True, quantity="torch.equal",
            ...            evidence="deterministic", basis="float64", role="against")
            Verdict: holds — x.grad equals the gradient of every term  [deterministic, float64: torch.equal]
            >>> book.summary()
            Summary of this run (generated from the verdict records; a belief is True when every check that bears on it comes out its way (✓), False when none does (✗), Partly otherwise)
            <BLANKLINE>
            §1  a loss summed in a loop keeps only the last term (the course's question)
                verdict: False
                why: ✗ holds: x.grad equals the gradient of every term
        """
        lines = [f"Summary of this run (generated from the verdict records; {SUMMARY_RULE})"]
        for section, belief, verdict, why in self.rows():
            lines += ["", f"§{section}  {belief}", f"    verdict: {verdict}", f"    why: {why}"]
        print("\n".join(lines))


def _hand_over(record: VerdictRecord) -> None:
    """Append the record to the file named by ``RNN_LAB_VERDICTS_OUT`` (``make verdicts``); else nothing."""
    out = os.environ.get(OUT_VARIABLE)
    if not out:
        return
    entry = asdict(record) | {"margin": record.margin}
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
