"""The CI regression check (``make regress``): a run's records against a committed baseline.

``python -m glue.bench.scripts.regress`` builds the ``ci`` surrogate zoo, runs a fixed slice of benchmark
cases into a scratch results root and calls ``check`` here; this module is pure functions of records (no torch, no
files but ``load_baseline``/``write_baseline``), so it is tested with made-up records.

Two kinds of checks, both on the latest record per case:

- **Planted facts** (``check_facts``, on the new records alone): the zoo plants harmful and drifted
  members and families, so Model-GLUE's findings (https://arxiv.org/abs/2410.05357, §3-§5) must show:
  ``merge-all-below-best-single`` (a merge of every candidate, harmful/drifted ones included, scores
  below the best single model), ``selective-merge-at-least-best-single`` (a selection strategy's merge
  scores at least the best single model), ``clusters-are-families`` (every cluster case recovers the
  planted families exactly) and ``recipe-above-best-single`` (every ``recipe-*`` case scores above the
  best single model; not checked while no recipe case is recorded). The best single model is the best
  ``single-*`` case other than the base (``report.References``).
- **No moves** (``compare``): every case of the baseline is recorded again with the same config, and
  no accuracy (the average and each task) moves by more than ``tolerance``. The default tolerance is 0:
  on the same zoo fingerprint (bitwise-equal weights) the native evaluator scores greedy exact matches,
  merges and selections are seeded and the harness runs one torch thread on pinned kernels, so every
  number is a deterministic function of the code and any move is a change of behaviour.

Records of another zoo fingerprint are never compared: ``ZooDiffers`` says the zoo differs instead.

**Known failures** (``known_failures.csv`` beside the baseline, written by hand: ``check,case,reason``)
declare a planted fact that is known not to hold, with the reason. It is reported on every run as
``KNOWN`` (text and JSON, with the reason) instead of failing the run, and like a strict xfail an entry
whose fact holds again fails the run until its line is removed. It never hides a moved number.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from glue.errors import GlueError
from glue.record.provenance import Record
from glue.record.report import References
from glue.record.store import atomic_write, latest

TOLERANCE = 0.0
BASELINE_RECORDS = "baseline.jsonl"
BASELINE_TABLE = "baseline.csv"
KNOWN_FAILURES = "known_failures.csv"
HARMFUL_ROLES = ("harmful", "drifted")


class ZooDiffers(GlueError):
    """The baseline and the new records were measured on different zoo weights (fingerprints)."""


@dataclass(frozen=True)
class Finding:
    """One check: a planted fact or a compared metric. ``ok`` None: not checked (says why in ``message``).
    For a compared metric ``baseline``/``new`` are its two values; for a fact, ``baseline`` is the reference
    (the best single model's average) and ``new`` the checked value."""

    check: str  # a fact name, or "moved", "missing", "config"
    case: str
    metric: str
    baseline: float | str | None
    new: float | str | None
    ok: bool | None
    message: str
    known: str | None = None  # a declared known failure: its reason (``ok`` is then False, not counted)


@dataclass
class Outcome:
    """The result of ``check``: every finding, and what was compared."""

    zoo: str
    fingerprint: str | None
    baseline_fingerprint: str | None
    tolerance: float
    cases: int
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.ok is False and f.known is None]

    @property
    def known_failures(self) -> list[Finding]:
        return [f for f in self.findings if f.ok is False and f.known is not None]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {"ok": self.ok, "zoo": self.zoo, "fingerprint": self.fingerprint,
                "baseline_fingerprint": self.baseline_fingerprint, "tolerance": self.tolerance, "cases": self.cases,
                "failures": [asdict(f) for f in self.failures],
                "known_failures": [asdict(f) for f in self.known_failures],
                "findings": [asdict(f) for f in self.findings],
                "notes": self.notes}

    def render(self) -> str:
        """Readable text (for stderr): the facts, every failure, the notes, the verdict."""
        out = [f"regress: zoo {self.zoo}, fingerprint {self.fingerprint} (baseline {self.baseline_fingerprint}), "
               f"{self.cases} cases, tolerance {self.tolerance:g}"]
        facts = [f for f in self.findings if f.check not in ("moved", "missing", "config")]
        for f in facts:
            tag = "ok  " if f.ok else "skip" if f.ok is None else "KNOWN" if f.known is not None else "FAIL"
            out.append(f"  {tag} {f.check}: {f.message}" + (f" [known failure: {f.known}]" if f.known else ""))
        compared = [f for f in self.findings if f.check == "moved"]
        out.append(f"  {sum(f.ok is True for f in compared)}/{len(compared)} metrics within tolerance of the baseline")
        out += [f"  FAIL {f.check}: {f.message}" for f in self.failures if f not in facts]
        out += [f"  note: {n}" for n in self.notes]
        n, k = len(self.failures), len(self.known_failures)
        known = f" with {k} known failure{'s' if k != 1 else ''} ({', '.join(f.check for f in self.known_failures)})" \
            if k else ""
        out.append(f"regress: PASSED{known}" if self.ok else f"regress: FAILED ({n} failure{'s' if n != 1 else ''})")
        return "\n".join(out)


# ---- metrics ----------------------------------------------------------------------------------------

def metrics(record: Record) -> dict[str, float]:
    """The compared numbers of a record: ``average`` and ``acc.<task>`` per task."""
    out = {f"acc.{t}": float(v) for t, v in sorted(record.scores.items())}
    if record.average is not None:
        out = {"average": float(record.average), **out}
    return out


def fingerprint_of(records: list[Record], what: str) -> str | None:
    """The one zoo fingerprint of ``records`` (``what`` names them in the error)."""
    fps = sorted({r.zoo_fingerprint for r in records}, key=str)
    if len(fps) > 1:
        raise ZooDiffers(f"{what} mix records of {len(fps)} zoo fingerprints ({', '.join(map(str, fps))}); "
                         f"a regression check compares records of one zoo build only")
    return fps[0] if fps else None


# ---- planted facts ----------------------------------------------------------------------------------

def check_facts(records: list[Record]) -> list[Finding]:
    """The planted facts (module docstring) on the latest record per case of ``records``."""
    recs = latest(records)
    best = References.of(recs).best_single
    if best is None:
        return [Finding("best-single", "single-*", "average", None, None, False,
                        "no single-model case other than the base is recorded: the planted facts compare "
                        "against the best single model")]
    ref = f"best single {best.case} {best.average:.4f}"
    roles = {str(r.config.get("member")): str(r.config.get("role", "")) for r in recs if r.family == "single"}
    out = []
    merges = [r for r in recs if r.family == "merge" and r.average is not None]
    for r in (r for r in merges if r.config.get("strategy") == "all"):
        joined = [m for m in r.config.get("members", []) if roles.get(m) in HARMFUL_ROLES]
        if not joined:
            out.append(Finding("merge-all-below-best-single", r.case, "average", best.average, r.average, None,
                               f"{r.case} merges no harmful or drifted member: the fact does not apply"))
            continue
        ok = r.average < best.average
        out.append(Finding("merge-all-below-best-single", r.case, "average", best.average, r.average, ok,
                           f"{r.case} average {r.average:.4f} {'<' if ok else 'is NOT below'} {ref} "
                           f"(harmful/drifted members joined: {', '.join(joined)})"))
    for r in (r for r in merges if r.config.get("strategy") not in ("all", None)):
        ok = r.average >= best.average
        kept = r.extra.get("kept", "?")
        out.append(Finding("selective-merge-at-least-best-single", r.case, "average", best.average, r.average, ok,
                           f"{r.case} average {r.average:.4f} {'>=' if ok else 'is BELOW'} {ref} (kept {kept})"))
    for r in (r for r in recs if r.family == "cluster"):
        ok = r.extra.get("recovers_families") is True
        out.append(Finding("clusters-are-families", r.case, "recovers_families", True, r.extra.get("recovers_families"),
                           ok, f"{r.case} clusters {r.extra.get('clusters')} "
                               f"{'=' if ok else 'are NOT'} the planted families {r.extra.get('families')}"))
    recipes = [r for r in recs if r.family == "recipe" and r.average is not None]
    for r in recipes:
        ok = r.average > best.average
        out.append(Finding("recipe-above-best-single", r.case, "average", best.average, r.average, ok,
                           f"{r.case} average {r.average:.4f} {'>' if ok else 'is NOT above'} {ref}"))
    if not recipes:
        out.append(Finding("recipe-above-best-single", "recipe-*", "average", best.average, None, None,
                           "no recipe-* case recorded (the recipe cases were not run): not checked"))
    return out


# ---- baseline comparison ----------------------------------------------------------------------------

def require_same_zoo(baseline: list[Record], fingerprint: str | None) -> None:
    """Raise ``ZooDiffers`` unless ``baseline`` was measured on zoo weights of ``fingerprint``."""
    fb = fingerprint_of(baseline, "the baseline records")
    if baseline and fb != fingerprint:
        raise ZooDiffers(
            f"the zoo differs: the baseline was measured on zoo {baseline[0].zoo!r} fingerprint {fb}, this run on "
            f"fingerprint {fingerprint}. Accuracies of different weights are not compared. If the zoo changed on "
            f"purpose (a recipe or training change), refresh the baseline with `make regress-baseline` and commit "
            f"it; otherwise this machine builds other weights than the baseline's (see `glue zoo verify` and the "
            f"kernels in the records' provenance)")


def compare(baseline: list[Record], new: list[Record], tolerance: float = TOLERANCE) -> list[Finding]:
    """Every metric of every baseline case against the new records (latest per case).

    Raises:
        ZooDiffers: the two sides were measured on different zoo fingerprints.
    """
    fn = fingerprint_of(new, "the new records")
    if new:
        require_same_zoo(baseline, fn)
    now = {r.case: r for r in latest(new)}
    out = []
    for b in latest(baseline):
        r = now.get(b.case)
        if r is None:
            out.append(Finding("missing", b.case, "-", "recorded", None, False,
                               f"case {b.case} is in the baseline but was not recorded by this run"))
            continue
        if r.config_hash != b.config_hash:
            keys = sorted(k for k in set(b.config) | set(r.config) if b.config.get(k) != r.config.get(k))
            out.append(Finding("config", b.case, "config", b.config_hash[:12], r.config_hash[:12], False,
                               f"case {b.case}: config changed ({', '.join(keys)}); its numbers are not comparable: "
                               f"refresh the baseline (`make regress-baseline`) if the change is intended"))
            continue
        old, got = metrics(b), metrics(r)
        for m in sorted(set(old) | set(got), key=lambda k: (k != "average", k)):
            x, y = old.get(m), got.get(m)
            ok = x is not None and y is not None and abs(y - x) <= tolerance
            moved = f"moved {y - x:+.4f}" if x is not None and y is not None else "missing on one side"
            out.append(Finding("moved", b.case, m, x, y, ok,
                               f"case {b.case} metric {m}: baseline {_fmt(x)}, new {_fmt(y)} "
                               f"({moved}; tolerance {tolerance:g})"))
    return out


def _fmt(v: float | None) -> str:
    return "absent" if v is None else f"{v:.4f}"


def apply_known(facts: list[Finding], known: dict[tuple[str, str], str]) -> list[Finding]:
    """Mark the facts declared in ``known`` (``(check, case) -> reason``): a failing one carries its reason
    (reported, not counted); one that holds again, or an entry matching no fact, is a failure."""
    out, seen = [], set()
    for f in facts:
        reason = known.get((f.check, f.case))
        if reason is not None:
            seen.add((f.check, f.case))
            if f.ok is False:
                f = replace(f, known=reason)
            elif f.ok:
                out.append(Finding("known-failure-holds", f.case, f.metric, f.baseline, f.new, False,
                                   f"{f.check} on {f.case} is declared a known failure ({reason}) but holds now: "
                                   f"remove its line from {KNOWN_FAILURES}"))
        out.append(f)
    for check_, case in sorted(set(known) - seen):
        out.append(Finding("known-failure-unmatched", case, "-", None, None, False,
                           f"{KNOWN_FAILURES} declares {check_} on {case}, which this run did not check: "
                           f"remove or fix the line"))
    return out


def check(baseline: list[Record], new: list[Record], tolerance: float = TOLERANCE,
          known: dict[tuple[str, str], str] | None = None) -> Outcome:
    """The planted facts of ``new`` (``known``: declared known failures, see ``apply_known``) and its
    comparison with ``baseline`` (see the module docstring)."""
    if tolerance < 0:
        raise GlueError(f"tolerance must be >= 0, not {tolerance}")
    findings = compare(baseline, new, tolerance)
    findings = apply_known(check_facts(new), known or {}) + findings
    base_cases = {r.case for r in baseline}
    extra = sorted({r.case for r in new} - base_cases)
    notes = [f"case(s) not in the baseline, facts only: {', '.join(extra)} (refresh the baseline to compare them)"] \
        if extra else []
    zoo = (new or baseline)[0].zoo if (new or baseline) else "?"
    return Outcome(zoo, fingerprint_of(new, "the new records"), fingerprint_of(baseline, "the baseline records"),
                   tolerance, len({r.case for r in new}), findings, notes)


# ---- the baseline files -----------------------------------------------------------------------------

def load_baseline(folder: Path) -> list[Record]:
    """The records of ``folder/baseline.jsonl``.

    Raises:
        GlueError: the file is missing or a line is not a record (named with its line number).
    """
    path = Path(folder) / BASELINE_RECORDS
    if not path.is_file():
        raise GlueError(f"no regression baseline at {path}; write one with `make regress-baseline` and commit it")
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(Record.from_dict(json.loads(line)))
            except (ValueError, TypeError) as e:
                raise GlueError(f"{path}:{i}: not a valid record: {e}") from None
    return out


def load_known(folder: Path) -> dict[tuple[str, str], str]:
    """``folder/known_failures.csv`` as ``(check, case) -> reason`` (empty without the file).

    Raises:
        GlueError: a row without the three columns or an empty reason (named with its line number).
    """
    path = Path(folder) / KNOWN_FAILURES
    if not path.is_file():
        return {}
    out = {}
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows or [c.strip() for c in rows[0]] != ["check", "case", "reason"]:
        raise GlueError(f"{path}:1: the header must be 'check,case,reason'")
    for i, row in enumerate(rows[1:], 2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != 3 or not all(c.strip() for c in row):
            raise GlueError(f"{path}:{i}: a known failure is check,case,reason (all three given), not {row}")
        out[(row[0].strip(), row[1].strip())] = row[2].strip()
    return out


def write_baseline(folder: Path, records: list[Record], known: dict[tuple[str, str], str] | None = None) -> list[Path]:
    """Write ``baseline.jsonl`` (the latest record per case, by case id) and ``baseline.csv`` (case, metric,
    value) under ``folder``, atomically. Refuses records of several fingerprints or whose facts fail
    (other than the declared ``known`` failures)."""
    recs = latest(records)
    fingerprint_of(recs, "the records")
    bad = [f for f in apply_known(check_facts(recs), known or {}) if f.ok is False and f.known is None]
    if bad:
        raise GlueError("refusing to write a baseline whose planted facts fail:\n" + "\n".join(f.message for f in bad))
    folder = Path(folder)
    jsonl, table = folder / BASELINE_RECORDS, folder / BASELINE_TABLE
    atomic_write(jsonl, "".join(r.to_json() + "\n" for r in recs))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["zoo", "zoo_fingerprint", "case", "config_hash", "metric", "value"])
    for r in recs:
        for m, v in metrics(r).items():
            w.writerow([r.zoo, r.zoo_fingerprint, r.case, r.config_hash[:12], m, repr(v)])
    atomic_write(table, buf.getvalue())
    return [jsonl, table]
