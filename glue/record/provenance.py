"""Result records and their provenance: who measured what, on which code, machine and libraries.

A :class:`Record` is one measured case (``single-ft_add``, ``merge-ties-coefficient``...): its config
and the config's hash, the measurements (per-task accuracy, average, times, peak memory, free-form
extras) and a :class:`Provenance`. Records are stored as one JSON object per line (see
``glue.record.store``); ``Record.to_dict``/``Record.from_dict`` are the schema, and ``from_dict``
rejects a record that does not follow it, naming the field.

Imports no torch: library versions come from package metadata, and the GPU name only when the
caller has already imported torch.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from glue.errors import ConfigError

SCHEMA_VERSION = 1

# distributions whose versions every record carries (None when not installed)
LIBRARIES = ("torch", "transformers", "tokenizers", "safetensors", "lm_eval", "datasets", "accelerate", "numpy",
             "pandas", "scipy", "scikit-learn", "matplotlib", "pytest", "pytest-benchmark")


# ---- config hash ------------------------------------------------------------------------------------

def canonical_json(config: dict) -> str:
    """``config`` as canonical JSON (sorted keys, no spaces, tuples as lists).

    Raises:
        ConfigError: a value is not plain JSON data (str, int, float, bool, None, list, dict with
            str keys) or is a non-finite float; the message names its path (``a.b[2]``).
    """
    return json.dumps(_plain(config, "config"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_hash(config: dict) -> str:
    """sha256 (hex) of ``canonical_json(config)``: equal configs hash equal, whatever their key order."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def _plain(v: Any, where: str) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, (str, int)):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ConfigError(f"{where} is {v!r}: configs must hold finite numbers")
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, dict):
        bad = [k for k in v if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"{where} has a non-string key {bad[0]!r}: config keys must be strings")
        return {k: _plain(x, f"{where}.{k}") for k, x in v.items()}
    raise ConfigError(f"{where} is a {type(v).__name__} ({v!r}); configs hold only JSON data "
                      f"(str, int, float, bool, None, list, dict)")


# ---- provenance -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Provenance:
    """Where and when a record was measured.

    Attributes:
        glue_version: ``glue.__version__``.
        commit: full git commit of the glue checkout, or ``unknown`` outside git; for a dirty tree
            ``COMMIT+HASH``, HASH keying the uncommitted change's content (``_change_hash``), so a
            record of a modified tree never counts as one of the clean commit or of another edit.
        dirty: True when tracked or untracked (not ignored) files differ from ``commit``; the results
            directory does not count. None when unknown.
        time: UTC time, ISO 8601 with microseconds and a ``Z`` (sorts as text).
        machine: hostname, platform, python, cpu, cores, ram_gb, gpu (None without CUDA), and kernels
            (``glue.kernels.state()``: the CPU kernel pin in force, the CPU's widest ISA).
        versions: distribution -> version (None when not installed), for ``LIBRARIES``.
    """

    glue_version: str
    commit: str
    dirty: bool | None
    time: str
    machine: dict[str, Any]
    versions: dict[str, str | None]

    @property
    def short_commit(self) -> str:
        return self.commit[:7]


def collect_provenance(results_root: Path | None = None) -> Provenance:
    """Provenance of a measurement made now, by this process."""
    from glue import __version__

    from glue import kernels

    commit, dirty = git_state(exclude=results_root)
    return Provenance(__version__, commit, dirty, utc_now(), {**machine_info(), "kernels": kernels.state()},
                      library_versions())


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def git_state(repo: Path | None = None, exclude: Path | None = None) -> tuple[str, bool | None]:
    """``(commit, dirty)`` of the git checkout holding glue (or ``repo``); ``("unknown", None)`` outside git.

    ``exclude`` (a directory, typically the results root) is left out of the dirty check, so that the
    results a benchmark writes into the repository do not make the next case dirty.
    """
    repo = repo or Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        spec = ["."]
        if exclude is not None:
            top = Path(git("rev-parse", "--show-toplevel")).resolve()
            ex = Path(exclude).resolve()
            if ex.is_relative_to(top) and ex != top:
                spec.append(f":(exclude){ex.relative_to(top).as_posix()}")
        dirty = bool(git("status", "--porcelain", "--", *spec))
        if dirty:  # key the records by the content of the change: another edit is another measurement
            commit = f"{commit}+{_change_hash(repo, spec)}"
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, dirty


def _change_hash(repo: Path, spec: list[str]) -> str:
    """12 hex digits of sha256 over the uncommitted change: ``git diff HEAD`` plus every untracked
    (not ignored) file's path and bytes."""
    def run(*args: str) -> bytes:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True, timeout=60).stdout

    h = hashlib.sha256(run("diff", "HEAD", "--binary", "--", *spec))
    top = Path(run("rev-parse", "--show-toplevel").decode().strip())
    for rel in sorted(run("ls-files", "--others", "--exclude-standard", "-z", "--", *spec).split(b"\0")):
        if rel:
            h.update(b"\0" + rel + b"\0")
            f = top / rel.decode()
            h.update(f.read_bytes() if f.is_file() and not f.is_symlink() else b"")
    return h.hexdigest()[:12]


def machine_info() -> dict[str, Any]:
    """hostname, platform, python, cpu (model name), cores, ram_gb, gpu (CUDA device name, or None).

    The GPU is looked up at each call (it is known only once torch is imported), the rest once."""
    return {**_host_info(), "gpu": gpu_name()}


@functools.cache
def _host_info() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
    }


def gpu_name() -> str | None:
    """Name (and count) of the CUDA devices, only when torch is already imported; never imports it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        n = torch.cuda.device_count()
        name = torch.cuda.get_device_name(0)
    except Exception:  # a broken driver must not break recording
        return None
    return name if n == 1 else f"{n}x {name}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def library_versions() -> dict[str, str | None]:
    """Installed version of each of ``LIBRARIES`` (None when absent), read from package metadata."""
    out: dict[str, str | None] = {}
    for dist in LIBRARIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


# ---- measurements and records -------------------------------------------------------------------------

@dataclass
class Measurements:
    """What a case's function returns: accuracy per task plus optional times and free-form extras.

    Attributes:
        scores: task -> accuracy in [0, 1]. The record's ``average`` is their plain mean.
        n: task -> number of items scored.
        eval_seconds: time spent evaluating.
        build_seconds: time spent building the model (merging, assembling an MoE...), if any.
        extra: free-form JSON metrics (``{"threshold": 0.95, "n_clusters": 3}``), shown as ``extra.KEY``.
        outcomes: task -> the per-item outcomes behind the score, stored form (``glue.record.outcomes.encode``).
            A case that returns an ``EvalResult`` gets them from it; for scores taken from an ``EvalResult``
            (``Measurements(scores=res.scores)``) the recorder finds them itself (``Recorder.measure``).
    """

    scores: dict[str, float] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)
    eval_seconds: float | None = None
    build_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def coerce(cls, out: Any) -> Measurements:
        """Accept a ``Measurements``, a ``glue.eval.EvalResult`` or a dict of ``Measurements`` fields."""
        if isinstance(out, cls):
            return out
        if isinstance(out, dict):
            allowed = {f.name for f in fields(cls)}
            bad = sorted(set(out) - allowed)
            if bad:
                raise ConfigError(f"case returned unknown measurement field(s) {bad}; allowed: {sorted(allowed)} "
                                  f"(put free-form metrics under 'extra')")
            return cls(**out)
        if hasattr(out, "scores") and hasattr(out, "seconds"):  # EvalResult, without importing glue.eval
            return cls(dict(out.scores), dict(getattr(out, "n", {})), out.seconds, outcomes=outcomes_of(out))
        raise ConfigError(f"a case must return Measurements, an EvalResult or a dict, not {type(out).__name__}")


@dataclass(frozen=True)
class Record:
    """One measured case, as stored (one JSON line) and as tables and plots read it.

    Attributes:
        case: stable case id; its family is the part before the first ``-`` (``single``, ``merge``...).
        zoo: zoo name (records live under ``results/ZOO/``).
        config: everything that defines the case (run settings included: split, evaluator, limit...).
        config_hash: ``config_hash(config)``.
        scores, n: task -> accuracy, task -> items.
        average: mean of ``scores`` (None without scores).
        eval_seconds, build_seconds: from the case; wall_seconds: the whole case function.
        peak_rss_mb: peak anonymous RSS during the case; rss_delta_mb: that peak over the start.
        peak_cuda_mb: ``torch.cuda.max_memory_allocated`` during the case (None without CUDA).
        extra: free-form metrics from the case.
        outcomes: task -> per-item outcomes behind its score (``glue.record.outcomes``; absent in records made
            before they were kept, and for tasks whose metric has none): paired comparisons and intervals
            (``glue.record.stats``) are computed from them.
        zoo_fingerprint: fingerprint of the zoo's weights (``glue.surrogate.lock``; 16 hex) for surrogate
            zoos; None for real zoos and records made before fingerprints existed. Reports compare only
            records of one fingerprint.
        provenance: see :class:`Provenance`.
        schema: record schema version (``SCHEMA_VERSION``).
    """

    case: str
    zoo: str
    config: dict[str, Any]
    config_hash: str
    provenance: Provenance
    scores: dict[str, float] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)
    average: float | None = None
    eval_seconds: float | None = None
    build_seconds: float | None = None
    wall_seconds: float | None = None
    peak_rss_mb: float | None = None
    rss_delta_mb: float | None = None
    peak_cuda_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    zoo_fingerprint: str | None = None
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @property
    def family(self) -> str:
        return case_family(self.case)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """One line of JSON (non-finite floats become null)."""
        return json.dumps(_finite(self.to_dict()), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Any) -> Record:
        """Parse a stored record; ``ValueError`` naming the field when it does not follow the schema."""
        if not isinstance(d, dict):
            raise ValueError(f"a record is a JSON object, not {type(d).__name__}")
        if d.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"field 'schema' is {d.get('schema')!r}; this glue reads schema {SCHEMA_VERSION} only")
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing, unknown = sorted(required - set(d)), sorted(set(d) - names)
        if missing or unknown:
            raise ValueError(f"missing field(s) {missing}" if missing else f"unknown field(s) {unknown}")
        for name, kind in (("case", str), ("zoo", str), ("config", dict), ("config_hash", str), ("scores", dict),
                           ("n", dict), ("extra", dict), ("provenance", dict), ("zoo_fingerprint", (str, type(None))),
                           ("outcomes", dict)):
            if name in d and not isinstance(d[name], kind):
                want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
                raise ValueError(f"field {name!r} must be a {want}, not {type(d[name]).__name__}")
        p, pnames = d["provenance"], {f.name for f in fields(Provenance)}
        if set(p) != pnames:
            raise ValueError(f"field 'provenance' must have exactly {sorted(pnames)}; "
                             f"missing {sorted(pnames - set(p))}, unknown {sorted(set(p) - pnames)}")
        return cls(**{**d, "provenance": Provenance(**p)})


def outcomes_of(result: Any, tasks: Any = None) -> dict[str, dict[str, Any]]:
    """The stored per-item outcomes (``glue.record.outcomes``) of an ``EvalResult``'s tasks (all, or ``tasks``)
    that have them: ``per_item`` values with their ``item_ids``."""
    from glue.record.outcomes import encode

    per, ids = getattr(result, "per_item", {}) or {}, getattr(result, "item_ids", {}) or {}
    return {t: encode(ids.get(t, range(len(per[t]))), per[t]) for t in (tasks or per) if per.get(t)}


def case_family(case: str) -> str:
    """``single-ft_add`` -> ``single``; ``merge-ties-coefficient`` -> ``merge``."""
    return case.split("-", 1)[0]


REFERENCE_PREFIXES = ("mix-ref-",)
"""Case ids that are references (oracle routing, the best single expert, a uniform merge of the same experts),
measured beside a family's cases but never one of its methods: never a family's "best case"."""


def is_reference(case: str) -> bool:
    """``mix-ref-oracle`` -> True; ``mix-model_level-centroids`` -> False."""
    return case.startswith(REFERENCE_PREFIXES)


def make_record(case: str, zoo: str, config: dict, m: Measurements, provenance: Provenance, *,
                wall_seconds: float | None = None, memory: dict[str, float | None] | None = None,
                zoo_fingerprint: str | None = None) -> Record:
    """Assemble a record from a case's measurements, its peak memory (``PeakMemory.as_dict()``), provenance
    and the zoo's fingerprint."""
    scores = {t: float(s) for t, s in m.scores.items()}
    return Record(
        case=case, zoo=zoo, config=json.loads(canonical_json(config)), config_hash=config_hash(config),
        provenance=provenance, scores=scores, n={t: int(k) for t, k in m.n.items()},
        average=sum(scores.values()) / len(scores) if scores else None,
        eval_seconds=m.eval_seconds, build_seconds=m.build_seconds, wall_seconds=wall_seconds,
        **(memory or {}), extra=json.loads(json.dumps(_finite(m.extra), default=_json_default)),
        zoo_fingerprint=zoo_fingerprint, outcomes={t: o for t, o in m.outcomes.items() if t in scores},
    )


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):  # numpy / torch scalars
        return v.item()
    raise ConfigError(f"extra metric value {v!r} ({type(v).__name__}) is not JSON data")
