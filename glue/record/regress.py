"""The CI regression check (``make regress``): a run's records against a committed baseline.

``benchmarks/regress.py`` builds the ``ci`` surrogate zoo, runs a fixed slice of benchmark cases into a
scratch results root and calls ``check`` here; this module is pure functions of records (no torch, no
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
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from glue.errors import GlueError
from glue.record.provenance import Record
from glue.record.report import References
from glue.record.store import atomic_write, latest

TOLERANCE = 0.0
BASELINE_RECORDS = "baseline.jsonl"
BASELINE_TABLE = "baseline.csv"
HARMFUL_ROLES = ("harmful", "drifted")


class ZooDiffers(GlueError):
    """The baseline and the new records were measured on different zoo weights (fingerprints)."""


@dataclass(frozen=True)
class Finding:
    """One check: a planted fact or a compared metric. ``ok`` None: not checked (says why in ``message``)."""

    check: str  # a fact name, or "moved", "missing", "config"
    case: str
    metric: str
    baseline: float | str | None
    new: float | str | None
    ok: bool | None
    message: str


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
        return [f for f in self.findings if f.ok is False]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {"ok": self.ok, "zoo": self.zoo, "fingerprint": self.fingerprint,
                "baseline_fingerprint": self.baseline_fingerprint, "tolerance": self.tolerance, "cases": self.cases,
                "failures": [asdict(f) for f in self.failures], "findings": [asdict(f) for f in self.findings],
                "notes": self.notes}

    def render(self) -> str:
        """Readable text (for stderr): the facts, every failure, the notes, the verdict."""
        out = [f"regress: zoo {self.zoo}, fingerprint {self.fingerprint} (baseline {self.baseline_fingerprint}), "
               f"{self.cases} cases, tolerance {self.tolerance:g}"]
        facts = [f for f in self.findings if f.check not in ("moved", "missing", "config")]
        for f in facts:
            out.append(f"  {'ok  ' if f.ok else 'FAIL' if f.ok is False else 'skip'} {f.check}: {f.message}")
        compared = [f for f in self.findings if f.check == "moved"]
        out.append(f"  {sum(f.ok is True for f in compared)}/{len(compared)} metrics within tolerance of the baseline")
        out += [f"  FAIL {f.check}: {f.message}" for f in self.failures if f not in facts]
        out += [f"  note: {n}" for n in self.notes]
        n = len(self.failures)
        out.append("regress: PASSED" if self.ok else f"regress: FAILED ({n} failure{'s' if n != 1 else ''})")
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
                           "no recipe-* case recorded (benchmarks/test_recipe.py absent): not checked"))
    return out


# ---- baseline comparison ----------------------------------------------------------------------------

def compare(baseline: list[Record], new: list[Record], tolerance: float = TOLERANCE) -> list[Finding]:
    """Every metric of every baseline case against the new records (latest per case).

    Raises:
        ZooDiffers: the two sides were measured on different zoo fingerprints.
    """
    fb, fn = fingerprint_of(baseline, "the baseline records"), fingerprint_of(new, "the new records")
    if baseline and new and fb != fn:
        raise ZooDiffers(
            f"the zoo differs: the baseline was measured on zoo {baseline[0].zoo!r} fingerprint {fb}, this run on "
            f"fingerprint {fn}. Accuracies of different weights are not compared. If the zoo changed on purpose "
            f"(a recipe or training change), refresh the baseline with `make regress-baseline` and commit it; "
            f"otherwise this machine builds other weights than the baseline's (see `glue zoo verify` and the "
            f"kernels in the records' provenance)")
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


def check(baseline: list[Record], new: list[Record], tolerance: float = TOLERANCE) -> Outcome:
    """The planted facts of ``new`` and its comparison with ``baseline`` (see the module docstring)."""
    if tolerance < 0:
        raise GlueError(f"tolerance must be >= 0, not {tolerance}")
    findings = compare(baseline, new, tolerance)
    findings = check_facts(new) + findings
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


def write_baseline(folder: Path, records: list[Record]) -> list[Path]:
    """Write ``baseline.jsonl`` (the latest record per case, by case id) and ``baseline.csv`` (case, metric,
    value) under ``folder``, atomically. Refuses records of several fingerprints or whose facts fail."""
    recs = latest(records)
    fingerprint_of(recs, "the records")
    bad = [f for f in check_facts(recs) if f.ok is False]
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
