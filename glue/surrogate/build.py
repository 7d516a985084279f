"""Build surrogate models into the cache: ``$GLUE_CACHE/surrogate/<recipe>-<key>/``.

Each model is a standard Hugging Face checkpoint (safetensors + config + tokenizer) plus
``glue_recipe.json`` (the recipe, its loss curve, build time, the sha256 of its weights and the CPU
kernels it was trained with: ``glue.kernels``, pinned to AVX2 so that every x86 machine with AVX2
builds bitwise-identical weights; see ``glue.surrogate.lock`` for digests and zoo fingerprints). Models are written to a temporary
directory and renamed when complete, so an interrupted build leaves nothing half-written. Independent
models train in parallel worker processes, one thread each (faster than one process on two threads
for models this small, and bit-identical to a serial build).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from glue.paths import cache_dir
from glue.surrogate import recipes as R


def model_path(name: str) -> Path:
    return cache_dir() / "surrogate" / f"{name}-{R.key(name)}"


def is_built(name: str) -> bool:
    return (model_path(name) / "glue_recipe.json").is_file()


def model_dir(name: str, build: bool = True) -> Path:
    """Directory of built recipe ``name``, building it (and its ancestors) first when needed."""
    from glue.surrogate import zoos  # noqa: F401  (registers the recipes)

    R.RECIPES.get(name)  # unknown-name error before anything else
    if not is_built(name):
        if not build:
            from glue.errors import CheckpointError

            raise CheckpointError(f"surrogate model {name!r} is not built; run `glue zoo build` for its zoo")
        build_models([name])
    return model_path(name)


def _build_one(name: str, queue=None) -> dict:
    import torch

    from glue import kernels
    from glue.io import atomic_dir
    from glue.io.checkpoint import load_model
    from glue.surrogate import zoos  # noqa: F401  (registers the recipes in a fresh worker)
    from glue.registry import load_plugins
    from glue.surrogate.tokenizer import char_tokenizer
    from glue.surrogate.train import train

    load_plugins()  # recipes that plugins register (glue.pretrained's smol4), in a fresh spawned worker too
    kernel_state = kernels.require_pinned()  # before any kernel of this process runs on the recipe
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = R.RECIPES.get(name)
        if hasattr(r, "build_model"):  # a plugin's recipe trains and writes its own model (same folder, key, digest)
            return r.build_model(model_path(name), kernel_state, progress=queue.put if queue is not None else None)
        model = r.arch.build(r.seed) if r.arch else load_model(model_path(r.parent))[0]
        t0 = time.time()
        last = [0]

        def progress(step: int) -> None:
            if queue is not None and (step - last[0] >= 25 or step == r.steps):
                queue.put(step - last[0])
                last[0] = step

        warmup = r.warmup_steps / r.steps if r.warmup_steps is not None else 0.05
        losses = train(model, dict(r.mix), r.steps, r.lr, r.seed, batch=r.batch, warmup=warmup, corrupt=r.corrupt,
                       schedule=r.schedule, progress=progress)
        info = {"recipe": r.name, "key": R.key(name), "fields": r.train_fields(), "family": r.family, "role": r.role,
                "note": r.note, "train_seconds": round(time.time() - t0, 2), "final_loss": sum(losses[-20:]) / 20,
                "losses": [round(x, 4) for x in losses[:: max(1, len(losses) // 200)]]}
        with atomic_dir(model_path(name), overwrite=True, kind="surrogate", checked=False) as tmp:
            model.save_pretrained(tmp)
            char_tokenizer().save_pretrained(tmp)
            info |= {"weights_sha256": file_digest(tmp / "model.safetensors"), "kernels": kernel_state}
            (tmp / "glue_recipe.json").write_text(json.dumps(info, indent=1))
        return info
    finally:
        torch.set_num_threads(prev_threads)


def build_models(names: list[str], workers: int | None = None, progress: bool = True) -> list[str]:
    """Build ``names`` and their ancestors that are not cached yet; return the names built.

    ``workers`` defaults to ``$GLUE_BUILD_WORKERS`` or the CPU count (at most 2 are useful here).
    """
    from tqdm import tqdm

    from glue import kernels
    from glue.surrogate import zoos  # noqa: F401

    todo = [n for n in R.lineage(names) if not is_built(n)]
    if not todo:
        return []
    kernels.require_pinned()  # fail now, not in a worker minutes later (workers inherit this environment)
    chain = {n: _chain_steps(n, todo) for n in todo}
    todo.sort(key=lambda n: -chain[n])  # longest downstream chain first (parents still precede)
    workers = max(1, min(workers or int(os.environ.get("GLUE_BUILD_WORKERS", os.cpu_count() or 1)), len(todo)))
    bar = tqdm(total=sum(R.RECIPES.get(n).steps for n in todo), desc=f"building {len(todo)} models", unit="step",
               disable=not progress, dynamic_ncols=True)
    try:
        if workers == 1:
            for n in todo:
                bar.set_postfix_str(n)
                _build_one(n, _BarQueue(bar))
            return todo
        ctx = mp.get_context("spawn")
        with ctx.Manager() as mgr, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            q = mgr.Queue()
            pending, running, done = list(todo), {}, set()
            while pending or running:
                for n in list(pending):  # start every model whose parent is ready
                    p = R.RECIPES.get(n).parent
                    if len(running) < workers and (p is None or p in done or p not in todo):
                        running[pool.submit(_build_one, n, q)] = n
                        pending.remove(n)
                bar.set_postfix_str(",".join(sorted(running.values())))
                finished, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                while not q.empty():
                    bar.update(q.get())
                for f in finished:
                    f.result()  # re-raise a worker's error
                    done.add(running.pop(f))
        return todo
    finally:
        bar.close()


def file_digest(path: Path) -> str:
    """sha256 (hex) of a file, read in 1 MiB blocks (what ``sha256sum`` prints)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _chain_steps(name: str, todo: list[str]) -> int:
    """Training steps on the longest chain from ``name`` down through its descendants in ``todo``."""
    kids = [n for n in todo if R.RECIPES.get(n).parent == name]
    return R.RECIPES.get(name).steps + max((_chain_steps(k, todo) for k in kids), default=0)


class _BarQueue:
    def __init__(self, bar):
        self.bar = bar

    def put(self, n: int) -> None:
        self.bar.update(n)
