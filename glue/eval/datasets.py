"""The datasets of the real benchmarks, where glue reads them offline, and how they get there.

lm-eval reads a task's data with ``datasets.load_dataset(dataset_path, dataset_name)``; glue runs it
offline (``HF_DATASETS_OFFLINE=1``) with ``HF_DATASETS_CACHE=$GLUE_CACHE/hf_datasets`` (``glue.eval.lmeval``,
``glue.eval.prompts``), so a dataset is usable when that cache holds it: ``CACHE/<org>___<name>/<config>/
<version>/<hash>/dataset_info.json`` plus its arrow files (what ``load_dataset`` writes when it downloads).

``glue zoo build <real zoo>`` checks every dataset of the zoo's tasks (``dataset_status``) and fetches the
missing ones when the hub is reachable (``fetch_datasets``: one progress bar over the datasets, then each is
verified: its splits listed in ``dataset_info.json`` with their arrow files present and non-empty). Without
hub access the error lists each missing dataset and the command that fetches it, before any other work.

``write_offline_dataset`` writes such a cache entry from rows (tests; an air-gapped machine with the data
as JSON).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from glue.errors import ConfigError
from glue.paths import cache_dir


@dataclass(frozen=True)
class Dataset:
    """One ``load_dataset(repo, config)`` that ``task`` needs."""

    task: str
    repo: str
    config: str | None


_FIXED = {  # lm-eval 0.4.13's dataset_path / dataset_name of each real task (lm_eval/tasks/*/...yaml)
    "arc_challenge": [("allenai/ai2_arc", "ARC-Challenge")],
    "winogrande": [("allenai/winogrande", "winogrande_xl")],
    "gsm8k": [("openai/gsm8k", "main")],
    "mbpp": [("google-research-datasets/mbpp", "full")],
    "humaneval": [("openai/openai_humaneval", None)],
}


@lru_cache(maxsize=None)
def mmlu_subjects() -> tuple[str, ...]:
    """The 57 ``cais/mmlu`` configs lm-eval's ``mmlu`` group reads (its ``mmlu_<subject>.yaml`` files)."""
    import lm_eval

    root = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / "default"
    out = []
    for f in sorted(root.glob("mmlu_*.yaml")):
        for line in f.read_text().splitlines():
            if line.startswith('"dataset_name":') or line.startswith("dataset_name:"):
                out.append(line.split(":", 1)[1].strip().strip('"'))
    return tuple(out)


def task_datasets(tasks: Sequence[str]) -> list[Dataset]:
    """The datasets lm-eval loads for the real ``tasks`` (local tasks need none)."""
    from glue.eval.tasks import TASKS

    out = []
    for t in tasks:
        spec = TASKS.get(t)
        if spec.local:
            continue
        if t == "mmlu":
            out += [Dataset(t, "cais/mmlu", s) for s in mmlu_subjects()]
        elif t in _FIXED:
            out += [Dataset(t, r, c) for r, c in _FIXED[t]]
        else:
            raise ConfigError(f"task {t!r}: glue does not know which dataset lm-eval's {spec.lm_eval_task!r} reads; "
                              f"add it to glue.eval.datasets")
    return out


def datasets_cache() -> Path:
    """Where glue reads the benchmarks' datasets: ``$HF_DATASETS_CACHE`` when set, else
    ``$GLUE_CACHE/hf_datasets`` (the default ``glue.eval.lmeval`` gives lm-eval)."""
    env = os.environ.get("HF_DATASETS_CACHE")
    return Path(env).expanduser() if env else cache_dir() / "hf_datasets"


def _entry_root(cache: Path, repo: str) -> Path:
    from datasets.naming import camelcase_to_snakecase

    parts = repo.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    return cache / "___".join(parts)


def problem(ds: Dataset, cache: Path | None = None) -> str | None:
    """Why ``ds`` is not usable from the cache (None when it is): not cached, or a cached entry whose
    ``dataset_info.json`` lists no splits or whose arrow files are missing or empty."""
    cache = cache or datasets_cache()
    root = _entry_root(cache, ds.repo) / (ds.config or "*")
    infos = sorted(glob.glob(str(root / "*" / "*" / "dataset_info.json")))
    if not infos:
        return "not in the cache"
    d = Path(infos[-1]).parent
    try:
        splits = json.loads(Path(infos[-1]).read_text()).get("splits") or {}
    except (OSError, ValueError) as e:
        return f"{infos[-1]}: unreadable ({e})"
    if not splits:
        return f"{d}: dataset_info.json lists no splits"
    for name, info in splits.items():
        files = list(d.glob(f"*-{name}*.arrow"))
        if not files or not all(f.stat().st_size > 0 for f in files) or not info.get("num_examples"):
            return f"{d}: split {name!r} has no (or empty) arrow files"
    return None


def dataset_status(tasks: Sequence[str], cache: Path | None = None) -> list[tuple[Dataset, str | None]]:
    """``(dataset, problem or None)`` for every dataset of ``tasks``."""
    return [(ds, problem(ds, cache)) for ds in task_datasets(tasks)]


def fetch_command(datasets: Sequence[Dataset], cache: Path | None = None) -> str:
    """The shell command that downloads ``datasets`` (one repository) into the cache glue reads."""
    cache = cache or datasets_cache()
    repo = datasets[0].repo
    cfgs = [d.config for d in datasets]
    if cfgs == [None]:
        call = f"datasets.load_dataset('{repo}')"
    elif len(cfgs) == 1:
        call = f"datasets.load_dataset('{repo}', '{cfgs[0]}')"
    else:
        call = f"[datasets.load_dataset('{repo}', c) for c in '{' '.join(cfgs)}'.split()]"
    return f"HF_DATASETS_CACHE={cache} python -c \"import datasets; {call}\""


def missing_message(zoo: str, missing: Sequence[tuple[Dataset, str]], reason: str, cache: Path | None = None) -> str:
    cache = cache or datasets_cache()
    by_repo: dict[str, list[tuple[Dataset, str]]] = {}
    for ds, why in missing:
        by_repo.setdefault(ds.repo, []).append((ds, why))
    lines = [f"zoo {zoo}: {len(missing)} dataset(s) of its tasks are not in {cache} (where glue reads them "
             f"offline) and cannot be fetched: {reason}."]
    for repo, items in by_repo.items():
        tasks = sorted({d.task for d, _ in items})
        cfg = (items[0][0].config or "(default)") if len(items) == 1 else f"{len(items)} configs"
        lines.append(f"  {repo} {cfg} (task {', '.join(tasks)}): {items[0][1]}")
        lines.append(f"    fetch: {fetch_command([d for d, _ in items], cache)}")
    lines.append(f"On a machine with hub access `glue zoo build {zoo}` fetches them all (then copy {cache} here).")
    return "\n".join(lines)


def fetch_datasets(zoo: str, tasks: Sequence[str], *, download: bool = True, progress: bool = True,
                   log: Callable[[str], None] = print, load: Callable[[Dataset, Path], None] | None = None
                   ) -> list[Dataset]:
    """Make every dataset of ``tasks`` usable from the cache; return them. ``load(ds, cache)`` downloads one
    (default ``datasets.load_dataset`` into ``cache``; tests pass a fake). Raises ``ConfigError`` listing
    every missing dataset with its fetch command when downloads are off or the hub is not reachable, and
    when a fetched dataset fails verification."""
    from glue.zoo.fetch import hub_allowed

    cache = datasets_cache()
    status = dataset_status(tasks, cache)
    missing = [(ds, why) for ds, why in status if why]
    if not missing:
        return [ds for ds, _ in status]
    if not download or not hub_allowed():
        why = "downloads are off (--offline)" if not download else "HF_HUB_OFFLINE is set"
        raise ConfigError(missing_message(zoo, missing, why, cache))
    load = load or _hub_load
    from tqdm import tqdm

    log(f"zoo {zoo}: fetching {len(missing)} dataset(s) into {cache}")
    bar = tqdm(total=len(missing), unit="dataset", desc="datasets", disable=not progress, dynamic_ncols=True)
    try:
        for i, (ds, _) in enumerate(missing):
            bar.set_postfix_str(f"{ds.repo} {ds.config or ''}".strip())
            try:
                load(ds, cache)
            except ConfigError:
                raise
            except Exception as e:  # network errors of many types: list everything still missing
                rest = [(d, "not in the cache") for d, _ in missing[i:]]
                raise ConfigError(missing_message(zoo, rest, f"{type(e).__name__}: {str(e)[:200]}", cache)) from None
            bar.update(1)
    finally:
        bar.close()
    bad = [(ds, why) for ds, why in dataset_status(tasks, cache) if why]
    if bad:
        raise ConfigError(missing_message(zoo, bad, "fetched but failed verification", cache))
    return [ds for ds, _ in status]


def _hub_load(ds: Dataset, cache: Path) -> None:
    import datasets
    import datasets.config

    prev = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = False  # glue's offline default is for scoring, not for this fetch
    try:
        datasets.load_dataset(ds.repo, ds.config, cache_dir=str(cache))
    finally:
        datasets.config.HF_HUB_OFFLINE = prev


def write_offline_dataset(cache: str | os.PathLike, repo: str, config: str | None,
                          splits: dict[str, list[dict]]) -> Path:
    """Write ``splits`` (``{split: rows}``) as the cache entry ``load_dataset(repo, config)`` finds offline in
    ``cache``; return its directory. For tests and for data copied as JSON onto an air-gapped machine."""
    import datasets

    cache = Path(cache)
    work = cache / f".build-{os.getpid()}"
    files = {}
    for split, rows in splits.items():
        f = work / f"{split}.jsonl"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files[split] = str(f)
    try:
        b = datasets.load_dataset_builder("json", data_files=files, cache_dir=str(work / "c"))
        b.download_and_prepare()
        src = Path(b.cache_dir)
        name = repo.split("/")[-1]
        dst = _entry_root(cache, repo) / (config or "default") / "0.0.0" / "glue"
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        for p in src.glob("*.arrow"):
            shutil.copy(p, dst / p.name.replace("json-", f"{name}-", 1))
        info = json.loads((src / "dataset_info.json").read_text())
        info.update(config_name=config or "default", dataset_name=name)
        (dst / "dataset_info.json").write_text(json.dumps(info))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dst
