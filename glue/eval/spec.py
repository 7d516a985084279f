"""How models are scored, resolved once at the edge and passed down whole.

- ``EVAL_OPTIONS``: the evaluation options, as data (flag, type, default, help, choices), defined here once.
  ``add_eval_options(addoption)`` adds them to any parser: a CLI verb passes ``parser.add_argument``, the
  benchmark conftest pytest's ``group.addoption`` (pytest-benchmark's ``add_display_options(addoption)``
  pattern); both get the same flags, help texts and defaults.
- ``EvalSpec.resolve(values, tasks=...)`` turns the parsed values into a frozen ``EvalSpec``; every field is
  checked in one place, ``EvalSpec.__post_init__`` (also for specs built in code or from a recipe YAML), and
  an error names the option and its allowed values.
- The ``EvalSpec`` travels whole: ``glue.eval.evaluate_spec(model, tokenizer, spec)`` hands it to the
  evaluator (``EVALUATORS``, ``fn(model, tokenizer, spec)``), and ``spec.cache_key()`` keys stored scores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from glue.errors import ConfigError, GlueError

SPLITS = ("test", "search")

AUTO = "auto"
"""The evaluator value that ``EvalSpec.resolve`` turns into ``native`` when every task is a local (surrogate)
task (native equals lm-eval item by item there, and is fast), else ``lmeval``."""


def _mc_scoring() -> tuple[str, ...]:
    from glue.eval.tasks import MC_SCORING

    return MC_SCORING


def _prefix_cache() -> tuple[str, ...]:
    from glue.eval.tasks import PREFIX_CACHE

    return PREFIX_CACHE


def _evaluators() -> tuple[str, ...]:
    from glue.eval.evaluators import EVALUATORS

    return tuple(EVALUATORS.names())


@dataclass(frozen=True)
class EvalOption:
    """One evaluation option: ``field`` of ``EvalSpec``, its command-line ``flag``, how it parses (``type``,
    ``choices``: a function returning the allowed values, ``flag_only``: a switch) and its ``default``."""

    field: str
    flag: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    choices: Callable[[], Sequence[str]] | None = None
    flag_only: bool = False
    metavar: str | None = None


EVAL_OPTIONS: tuple[EvalOption, ...] = (
    EvalOption("split", "--split", "item split to score: test (reported numbers) or search (what selection may "
               "look at)", "test", choices=lambda: SPLITS),
    EvalOption("evaluator", "--evaluator", "evaluator: lmeval (lm-eval 0.4, the reported path), native (direct "
               "computation, local tasks only) or auto (native when every task is a surrogate task, else lmeval)",
               "lmeval", choices=lambda: (*_evaluators(), AUTO)),
    EvalOption("limit", "--limit", "score only the first N items of each task (smoke runs)", None, type=int,
               metavar="N"),
    EvalOption("device", "--device", "torch device models are loaded on: cpu, cuda, cuda:N", "cpu"),
    EvalOption("threads", "--threads", "torch intra-op threads while scoring (unset: torch's default)", None,
               type=int, metavar="N"),
    EvalOption("mc_scoring", "--mc-scoring", "how multiple-choice log-likelihoods are computed: rows (one forward "
               "pass per choice, as lm-eval's HFLM) or prompt_once (each prompt read once, its choices on a copy of "
               "its key/value cache; equal up to float rounding, 3-5x faster on chat prompts; models routing on "
               "the prompt stay on rows); unset: the zoo's extra mc_scoring, else rows", None,
               choices=_mc_scoring),
    EvalOption("prefix_cache", "--prefix-cache", "shared: the prompts of a batch read the token prefix they all share "
               "(a chat template's system turn) once and continue from a copy of its key/value cache, in generation "
               "and, under --mc-scoring prompt_once, in multiple choice (rows keeps lm-eval's whole rows); equal up "
               "to float rounding; models routing on the prompt read every prompt whole; unset: the zoo's extra "
               "prefix_cache, else none", None, choices=_prefix_cache),
    EvalOption("allow_code_execution", "--allow-code-execution", "let code tasks (mbpp, humaneval) run "
               "model-written programs, each in its own subprocess with a timeout and resource limits "
               "(glue.eval.sandbox); without it they are refused", False, flag_only=True),
)
OPTIONS: dict[str, EvalOption] = {o.field: o for o in EVAL_OPTIONS}


def add_eval_options(addoption: Callable[..., Any], names: Sequence[str] | None = None,
                     defaults: Mapping[str, Any] | None = None, helps: Mapping[str, str] | None = None) -> None:
    """Add the evaluation options ``names`` (default: all, ``EVAL_OPTIONS``) through ``addoption``
    (``argparse.ArgumentParser.add_argument`` or pytest's ``OptionGroup.addoption``: same keywords).

    ``defaults`` replaces an option's default for this parser (``None``: unset, so that a lower layer, such
    as a recipe file, decides); ``helps`` adds a sentence to an option's help. The help states the default."""
    defaults, helps = dict(defaults or {}), dict(helps or {})
    unknown = sorted((set(names or ()) | set(defaults) | set(helps)) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown evaluation option(s) {unknown}; allowed: {', '.join(OPTIONS)}")
    for name in names or OPTIONS:
        o = OPTIONS[name]
        default = defaults.get(name, o.default)
        text = o.help + (f"; {helps[name]}" if name in helps else "")
        if o.flag_only:
            addoption(o.flag, action="store_true", default=default, help=text)
            continue
        kw: dict[str, Any] = {"default": default, "help": f"{text} (default {default})" if default is not None
                              else text}
        if o.type is not None:
            kw["type"] = o.type
        if o.choices is not None:
            kw["choices"] = list(o.choices())
        if o.metavar:
            kw["metavar"] = o.metavar
        addoption(o.flag, **kw)


def _limit(v: Any) -> str | None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        return "a whole number of items >= 1 (or absent: every item)"
    return None


def _threads(v: Any) -> str | None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        return "a whole number of threads >= 1 (or absent: torch's default)"
    return None


def _batch_size(v: Any) -> str | None:
    if v is not None and v != "auto" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        return "an integer >= 1, 'auto' (lm-eval probes it) or absent (64 on CPU, auto on CUDA)"
    return None


def _choice(allowed: Callable[[], Sequence[str]]) -> Callable[[Any], str | None]:
    return lambda v: None if isinstance(v, str) and v in allowed() else ", ".join(allowed())


def _evaluator(v: Any) -> str | None:
    from glue.eval.evaluators import EVALUATORS

    if not isinstance(v, str):
        return ", ".join(_evaluators())
    EVALUATORS.get(v)  # an unknown name raises UnknownNameError, suggesting the nearest names
    return None


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "split": _choice(lambda: SPLITS),
    "evaluator": _evaluator,
    "limit": _limit,
    "device": lambda v: None if isinstance(v, str) and v else "a torch device name: cpu, cuda, cuda:N",
    "threads": _threads,
    "batch_size": _batch_size,
    "allow_code_execution": lambda v: None if isinstance(v, bool) else "true or false",
    "mc_scoring": _choice(_mc_scoring),
    "prefix_cache": _choice(_prefix_cache),
}
"""What each field allows: ``check(value)`` is None when allowed, else the allowed values in words (an unknown
evaluator name raises the registry's ``UnknownNameError``, which suggests the nearest names)."""


@dataclass(frozen=True)
class EvalSpec:
    """How models are scored (frozen, hashable; equal specs score alike).

    Attributes:
        tasks: task names (``glue.eval.TASKS``); empty means "the zoo's tasks" until ``with_tasks``.
        split: ``test`` (reported numbers) or ``search`` (what selection may look at).
        evaluator: a name in ``glue.eval.EVALUATORS`` (``lmeval``, ``native``).
        limit: score only the first ``limit`` items of each task (smoke runs); None = all.
        device: torch device models are loaded on (``cpu``, ``cuda``...).
        threads: torch intra-op threads while scoring (None = torch's default).
        batch_size: lm-eval's batch size (None: 64 on CPU, lm-eval's ``auto`` probe on CUDA).
        allow_code_execution: run tasks that execute model-written code (mbpp, humaneval).
        mc_scoring: ``rows`` or ``prompt_once``: how multiple-choice log-likelihoods are computed
            (``glue.eval.native``; both evaluators). Left out of ``case_config`` and ``cache_key`` at its
            default ``rows``, so records and stored scores made before it existed keep their keys.
        prefix_cache: ``none`` or ``shared``: whether a batch's prompts read their shared prefix once
            (``glue.eval.native.prefilled``; both evaluators); left out of keys at ``none``, as ``mc_scoring``.

    Every field is checked here (``ConfigError`` naming the field, its option and the allowed values), and
    so is the whole: tasks that run code need ``allow_code_execution``; an evaluator that scores local tasks
    only (``native``) gets no real benchmark.
    """

    tasks: tuple[str, ...] = ()
    split: str = "test"
    evaluator: str = "lmeval"
    limit: int | None = None
    device: str = "cpu"
    threads: int | None = None
    batch_size: int | str | None = None
    allow_code_execution: bool = False
    mc_scoring: str = "rows"
    prefix_cache: str = "none"

    def __post_init__(self) -> None:
        from glue.eval.evaluators import EVALUATORS
        from glue.eval.tasks import check_code_execution

        if isinstance(self.tasks, str):
            raise ConfigError(f"tasks: {self.tasks!r} is not a list of task names")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        for f in fields(self):
            if f.name in _CHECKS:
                want = _CHECKS[f.name](getattr(self, f.name))
                if want is not None:
                    flag = f" ({OPTIONS[f.name].flag})" if f.name in OPTIONS else ""
                    raise ConfigError(f"{f.name}{flag}: {getattr(self, f.name)!r}; allowed: {want}")
        specs = self.task_specs()
        check_code_execution(specs, self.allow_code_execution)
        if self.split == "search":  # a real task without non-test documents is refused here, before any model loads
            for t in specs:
                if not t.local:
                    t.search_source()
        if getattr(EVALUATORS.get(self.evaluator), "local_only", False):
            real = [t.name for t in specs if not t.local]
            if real:
                raise ConfigError(f"task {real[0]!r} is a real benchmark: the {self.evaluator} evaluator scores local "
                                  f"(surrogate) tasks only; use --evaluator lmeval")

    @classmethod
    def resolve(cls, values: Mapping[str, Any], *, tasks: Sequence[str] = (), base: EvalSpec | None = None) -> EvalSpec:
        """The spec of parsed option ``values`` (field name -> value; ``None`` or absent: ``base``'s value, else
        the option's default), with ``tasks``; evaluator ``auto`` becomes ``native`` when every task is local,
        else ``lmeval``. Raises ``ConfigError`` naming the option (``limit (--limit): 0; allowed: ...``)."""
        from glue.eval.tasks import TASKS

        base = base if base is not None else cls()
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown evaluation setting(s) {unknown}; allowed: {', '.join(f.name for f in fields(cls))}")
        kw = {k: v for k, v in values.items() if v is not None}
        kw["tasks"] = tuple(tasks or kw.get("tasks") or base.tasks)
        if kw.get("evaluator", base.evaluator) == AUTO:
            try:
                local = all(TASKS.get(t).local for t in kw["tasks"])
            except GlueError as e:
                raise ConfigError(f"tasks: {e}") from None
            kw["evaluator"] = "native" if local else "lmeval"
        return replace(base, **kw)

    @classmethod
    def from_options(cls, get: Callable[[str], Any], *, tasks: Sequence[str] = (), base: EvalSpec | None = None,
                     names: Sequence[str] | None = None) -> EvalSpec:
        """``resolve`` of the evaluation options a parser holds: ``get(field)`` is the parsed value of each of
        ``names`` (default: every option; None = not given). ``vars(args).get`` for argparse,
        ``config.getoption`` for pytest."""
        return cls.resolve({n: get(n) for n in (names or OPTIONS)}, tasks=tasks, base=base)

    def with_tasks(self, tasks: Sequence[str]) -> EvalSpec:
        """This spec with ``tasks`` filled in when it names none (a zoo's default tasks)."""
        return self if self.tasks else replace(self, tasks=tuple(tasks))

    def for_search(self) -> EvalSpec:
        """The spec selection decisions score: split ``search``, with the ``native`` evaluator when every task is
        local (the surrogate's own scorer: the same items, faster than lm-eval), else this spec's evaluator (a
        real task's search documents are disjoint from its test ones, see ``glue.eval.tasks``)."""
        local = all(t.local for t in self.task_specs())
        return replace(self, split="search", evaluator="native" if local else self.evaluator)

    def replace(self, **kw: Any) -> EvalSpec:
        """A copy with ``kw`` changed, checked as any spec."""
        return replace(self, **kw)

    def task_specs(self) -> tuple:
        """The ``TaskSpec`` of each task (``glue.eval.TASKS``), in order."""
        from glue.eval.tasks import TASKS

        return tuple(TASKS.get(t) for t in self.tasks)

    def case_config(self) -> dict[str, Any]:
        """The settings that make a benchmark case another measurement (part of its config and hash);
        the tasks are the case's own config."""
        out = {"split": self.split, "evaluator": self.evaluator, "limit": self.limit, "device": self.device,
               "threads": self.threads}
        return out | {k: getattr(self, k) for k, default in _LATER.items() if getattr(self, k) != default}

    def cache_key(self) -> str:
        """A stable text key of everything that decides a score (every field; the same in every process and
        Python version, unlike ``hash``): what stored scores (the search-score cache) are keyed on."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        for k, default in _LATER.items():  # at their defaults: keys made before the fields existed stay valid
            if d[k] == default:
                del d[k]
        return d


_LATER = {"mc_scoring": "rows", "prefix_cache": "none"}
"""Fields added after records and stored scores existed, with the default at which ``case_config`` and ``cache_key``
leave them out."""
