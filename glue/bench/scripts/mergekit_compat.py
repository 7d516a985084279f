#!/usr/bin/env python
"""glue merge against mergekit on the same mergekit configs: the feature table of issue 12.

Small random Llama checkpoints with a character-level tokenizer are built once into ``--scratch``
(a base and three fine-tunes = base + N(0, 0.02²), stored in float32 and in bfloat16; a copy of one
fine-tune with the same tokens under permuted ids; one with 4 extra vocabulary rows and tokens).
Every case is one mergekit config, run by mergekit's ``run_merge`` (what ``mergekit-yaml`` calls; all
cases in one process of its own venv, ``--mergekit-bin``) and by ``glue merge`` (``glue.cli.main``
in this process, optionally ``--mergekit-compat``). Outcome per case:

* both wrote a model: the largest |difference| over all tensors and the number of elements that
  differ (0 = bit-identical);
* glue refused: its message, and a check that it left no output directory;
* a case marked ``demo`` is also loaded with ``AutoModelForCausalLM`` and generates 8 tokens.

Writes a Markdown table to stdout (``results/mergekit_compat.md`` holds the committed one)::

    .venv/bin/python -m glue.bench.scripts.mergekit_compat --mergekit-bin /tmp/mkvenv/bin \\
        > results/mergekit_compat.md

mergekit's venv: ``python3 -m venv /tmp/mkvenv && /tmp/mkvenv/bin/pip install torch==2.13.0 mergekit==0.1.5``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path

import yaml

from glue.bench.scripts.merge_io import _env, _maxdiff, _tensors

from glue.merge.vocab import is_vocab_tensor, read_vocab  # noqa: E402

CHARS = list(string.digits + string.ascii_lowercase + "+=,:?|>- .\n")
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
LAYERS = 4


def save_tokenizer(d: Path, tokens: list[str]) -> None:
    """A character-level WordLevel tokenizer with ``tokens`` (ids = positions)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(tokens)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                  unk_token="<unk>")
    tok.save_pretrained(d)


def build(root: Path, dtype: str) -> dict[str, Path]:
    """base, ft0..ft2, perm (ft1 with permuted token ids), big (ft1 with 4 extra tokens)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    names = ["base", "ft0", "ft1", "ft2", "perm", "big"]
    dirs = {n: root / dtype / n for n in names}
    if all((d / "config.json").is_file() for d in dirs.values()):
        make_lora(dirs["ft1"], root / dtype / "lora")
        return dirs
    tokens = SPECIALS + CHARS
    torch.manual_seed(0)
    dt = getattr(torch, dtype)

    def cfg(vocab):
        # intermediate 576: the MLP matrices (36864 elements) exceed torch's 32768-element reduction grain,
        # so sums and norms over them depend on the thread count (issue 27)
        return LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=576, num_hidden_layers=LAYERS,
                           num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                           tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)

    model = LlamaForCausalLM(cfg(len(tokens))).to(dt)
    ref = {k: v.float().clone() for k, v in model.state_dict().items()}

    def save(name, sd, toks, vocab):
        m = LlamaForCausalLM(cfg(vocab)).to(dt)
        m.load_state_dict({k: v.to(dt) for k, v in sd.items()})
        m.save_pretrained(dirs[name])
        save_tokenizer(dirs[name], toks)

    save("base", ref, tokens, len(tokens))
    fts = []
    for i in range(3):
        g = torch.Generator().manual_seed(1 + i)
        sd = {k: v + 0.02 * torch.randn(v.shape, generator=g) for k, v in ref.items()}
        fts.append(sd)
        save(f"ft{i}", sd, tokens, len(tokens))
    g = torch.Generator().manual_seed(99)
    perm = torch.randperm(len(tokens) - 4, generator=g) + 4  # keep the specials in place
    order = list(range(4)) + perm.tolist()  # new id j holds old token order[j]
    psd = {k: (v[order] if k.endswith(("embed_tokens.weight", "lm_head.weight")) else v) for k, v in fts[1].items()}
    save("perm", psd, [tokens[o] for o in order], len(tokens))
    extra = ["<x0>", "<x1>", "<x2>", "<x3>"]
    bsd = {k: (torch.cat([v, 0.02 * torch.randn(4, v.shape[1], generator=g)])
               if k.endswith(("embed_tokens.weight", "lm_head.weight")) else v) for k, v in fts[1].items()}
    save("big", bsd, tokens + extra, len(tokens) + 4)
    make_lora(dirs["ft1"], root / dtype / "lora")
    return dirs


def make_lora(model_dir: Path, out: Path, seed: int = 7) -> Path:
    """A rank-4 LoRA adapter on q_proj/v_proj of ``model_dir`` with random (non-zero) A and B."""
    import torch
    from peft import LoraConfig, get_peft_model

    from glue.io.hfconfig import from_pretrained

    if (out / "adapter_config.json").is_file():
        return out
    m = get_peft_model(from_pretrained("model", model_dir),
                       LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_" in n:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    m.save_pretrained(out)
    return out


def cases(d: dict[str, Path], store: str) -> list[dict]:
    """(feature, mergekit config, glue flags, demo) per case."""
    m = {k: str(v) for k, v in d.items()}
    fts = [m["ft0"], m["ft1"], m["ft2"]]
    w = [0.5, 0.3, 0.2]

    def models(names, **per):
        return [{"model": n, **({"parameters": {k: v[i] for k, v in per.items()}} if per else {})}
                for i, n in enumerate(names)]

    slerp_recipe = {
        "slices": [{"sources": [{"model": m["ft0"], "layer_range": [0, LAYERS]},
                                {"model": m["ft1"], "layer_range": [0, LAYERS]}]}],
        "merge_method": "slerp", "base_model": m["ft0"],
        "parameters": {"t": [{"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
                             {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]}, {"value": 0.5}]}}
    out = []

    def add(feature, cfg, flags=(), demo=False, stores=("float32", "bfloat16")):
        if store in stores:
            out.append({"feature": feature, "cfg": cfg, "flags": list(flags), "demo": demo})

    dt = {"dtype": "float32", **({"out_dtype": "bfloat16"} if store == "bfloat16" else {})}
    # 1-4: the silent differences
    add("linear with base_model (merged as one more model)",
        {"merge_method": "linear", "base_model": m["base"], "models": models(fts[:2]),
         "parameters": {"weight": 0.5}, **dt})
    add("tokenizer_source: base, a model with permuted token ids",
        {"merge_method": "linear", "base_model": m["ft0"], "models": models([m["ft0"], m["perm"]]),
         "parameters": {"weight": 0.5}, "tokenizer_source": "base", **dt})
    add("tokenizer_source: <260-token model> + --vocab-policy truncate",
        {"merge_method": "linear", "models": models([m["ft0"], m["big"]], weight=[0.5, 0.5]),
         "tokenizer_source": m["big"], **dt}, ["--vocab-policy", "truncate"])
    add("tokenizer_source: union (a model with 4 extra tokens)",
        {"merge_method": "linear", "base_model": m["ft0"], "models": models([m["ft0"], m["big"]], weight=[0.5, 0.5]),
         "tokenizer_source": "union", **dt}, demo=True)
    union_ties = {"merge_method": "ties", "base_model": m["base"],
                  "models": models([m["ft0"], m["big"], m["perm"]], weight=[1.0, 0.5, 0.5], density=[0.5, 0.5, 0.5]),
                  "tokenizer_source": "union", **dt}
    add("tokenizer_source: union, ties over 3 models", union_ties)
    add("tokenizer_source: union, ties over 3 models, --mergekit-compat", union_ties, ["--mergekit-compat"],
        stores=("bfloat16",))
    add("tokenizer: section",
        {"merge_method": "linear", "models": models(fts[:2], weight=[0.5, 0.5]),
         "tokenizer": {"source": "base"}, "base_model": m["ft0"], **dt})
    add("chat_template (a Jinja template)",
        {"merge_method": "linear", "models": models(fts[:2], weight=[0.5, 0.5]), "tokenizer_source": "base",
         "base_model": m["ft0"], "chat_template": "{% for m in messages %}{{ m['content'] }}\n{% endfor %}", **dt})
    add("chat_template: chatml (a mergekit built-in name)",
        {"merge_method": "linear", "models": models(fts[:2], weight=[0.5, 0.5]), "tokenizer_source": "base",
         "base_model": m["ft0"], "chat_template": "chatml", **dt})
    lora = str(Path(m["ft1"]).parent / "lora")
    add("model+lora (adapter merged with peft first)",
        {"merge_method": "linear", "models": models([m["ft0"], m["ft1"] + "+" + lora], weight=[0.5, 0.5]), **dt})
    add("model+lora where the part after + is not an adapter",
        {"merge_method": "linear", "models": models([m["ft0"], m["ft1"] + "+" + m["ft2"]], weight=[0.5, 0.5]), **dt},
        stores=("float32",))
    # 5: slices, gradients, filters
    add("slerp gradient recipe (slices, filtered gradients)", {**slerp_recipe, **dt}, demo=True)
    add("linear, gradient weights over layers",
        {"merge_method": "linear", "models": models(fts[:2], weight=[[1, 0.2, 0.5], [0.1, 0.9, 0.5]]), **dt})
    filtered_ties = {"merge_method": "ties", "base_model": m["base"],
                     "models": models(fts, weight=[1, 0.6, 0.3],
                                      density=[[{"filter": "mlp", "value": 0.3}, {"value": 0.7}], 0.5, 0.6]),
                     "parameters": {"lambda": [0.8, 1.2]}, **dt}
    add("ties, filtered density and gradient lambda", filtered_ties)
    add("ties, filtered density and gradient lambda, --mergekit-compat", filtered_ties, ["--mergekit-compat"],
        stores=("bfloat16",))
    add("task_arithmetic, slices from two layer ranges",
        {"merge_method": "task_arithmetic", "base_model": m["base"],
         "slices": [{"sources": [{"model": m["base"], "layer_range": [0, 2]},
                                 {"model": m["ft0"], "layer_range": [0, 2], "parameters": {"weight": 0.7}},
                                 {"model": m["ft1"], "layer_range": [2, 4], "parameters": {"weight": 0.3}}]},
                    {"sources": [{"model": m["base"], "layer_range": [2, 4]},
                                 {"model": m["ft2"], "layer_range": [2, 4], "parameters": {"weight": 1.0}},
                                 {"model": m["ft0"], "layer_range": [0, 2], "parameters": {"weight": 0.5}}],
                     "parameters": {"lambda": 0.5}}], **dt})
    # 7: passthrough
    add("passthrough frankenmerge (6 layers from 4+4)",
        {"merge_method": "passthrough",
         "slices": [{"sources": [{"model": m["ft0"], "layer_range": [0, 3]}]},
                    {"sources": [{"model": m["ft1"], "layer_range": [1, 4]}]}], **dt}, demo=True)
    add("passthrough with scale filters",
        {"merge_method": "passthrough",
         "slices": [{"sources": [{"model": m["ft0"], "layer_range": [0, 4]}],
                     "parameters": {"scale": [{"filter": "o_proj", "value": 0.0},
                                              {"filter": "down_proj", "value": 0.5}, {"value": 1.0}]}}], **dt})
    # 8: methods glue does not have
    for meth in ("nuslerp", "multislerp", "karcher", "sce", "nearswap", "arcee_fusion"):
        one = meth in ("nearswap", "arcee_fusion")  # a base and one other model
        base = {"base_model": m["base"]} if meth in ("sce", "nearswap", "arcee_fusion") else {}
        n = 1 if one else 2 if meth == "nuslerp" else 3
        add(f"method {meth}", {"merge_method": meth, **base,
                                "models": models(fts[:n], **({"weight": [1.0, 0.6, 0.3][:n]}
                                                            if meth in ("nuslerp", "multislerp") else {})),
                                **({"parameters": {"t": 0.01}} if meth == "nearswap" else {}),
                                **({"parameters": {"select_topk": 0.5}} if meth == "sce" else {}), **dt})
    # torch's dot product sums in an order that depends on the thread count; mergekit runs with torch's default
    add("method karcher, glue --threads 0 (torch's default threads, as mergekit)",
        {"merge_method": "karcher", "models": models(fts), **dt}, ["--threads", "0"])
    add("method nuslerp with a base (task vectors)",
        {"merge_method": "nuslerp", "base_model": m["base"], "models": models(fts[:2], weight=[1.0, 0.5]), **dt})
    add("method multislerp with a base (task vectors)",
        {"merge_method": "multislerp", "base_model": m["base"], "models": models(fts, weight=[1.0, 0.5, 0.2]), **dt})
    # 9: compute dtype: mergekit computes in dtype; glue in float32 unless --mergekit-compat
    for c in parity_cases(m["base"], fts, store):
        add(c["feature"], c["cfg"], c["flags"], stores=(store,))
    # 10: LoRA and --no-copy-tokenizer
    add("--no-copy-tokenizer", {"merge_method": "linear", "models": models(fts[:2], weight=[0.5, 0.5]), **dt},
        ["--no-copy-tokenizer"], stores=("float32",))
    return out


PARITY = {"linear": ({"weight": [0.5, 0.3, 0.2]}, {}), "task_arithmetic": ({"weight": [0.5, 0.3, 0.2]}, {"lambda": 0.9}),
          "ties": ({"weight": [1.0, 0.6, 0.3], "density": [0.3, 0.5, 0.7]}, {}),
          "breadcrumbs": ({"weight": [1.0, 0.6, 0.3], "density": [0.5, 0.6, 0.7]}, {"gamma": 0.02}),
          "model_stock": ({}, {}), "slerp": ({}, {"t": 0.3}),
          "nuslerp": ({"weight": [1.0, 0.6]}, {}), "multislerp": ({"weight": [1.0, 0.6, 0.3]}, {}),
          "karcher": ({}, {}), "sce": ({}, {"select_topk": 0.5}), "nearswap": ({}, {"t": 0.01}),
          "arcee_fusion": ({}, {}),
          "dare_ties": ({"weight": [1.0, 0.6, 0.3], "density": [0.5, 0.6, 0.7]}, {}),
          "della": ({"weight": [1.0, 0.6, 0.3], "density": [0.5, 0.6, 0.7]}, {"epsilon": 0.1})}
"""The parity table's methods: (per-model parameters, global parameters)."""


def parity_cases(base: str, fts: list[str], dtype: str, methods=None) -> list[dict]:
    """Per method, the mergekit config computing in ``dtype``, in glue's default mode and with
    ``--mergekit-compat`` (slerp goes from ``fts[0]``; nearswap and arcee_fusion take one model)."""
    n_models = {"slerp": 2, "nuslerp": 2, "nearswap": 1, "arcee_fusion": 1}
    no_base = ("linear", "nuslerp", "multislerp", "karcher")
    out = []
    for meth in methods or PARITY:
        pm, gp = PARITY[meth]
        n = min(n_models.get(meth, 3), len(fts))
        cfg = {"merge_method": meth, "models": [
            {"model": f, **({"parameters": {k: v[i] for k, v in pm.items()}} if pm else {})}
            for i, f in enumerate(fts[:n])], "dtype": dtype}
        if meth not in no_base:
            cfg["base_model"] = fts[0] if meth == "slerp" else base
        if gp:
            cfg["parameters"] = gp
        variants = [[], ["--mergekit-compat"]]
        if meth == "arcee_fusion" and dtype != "float32":  # mergekit writes its float32 result as it is
            variants.append(["--mergekit-compat", "--dtype", "float32"])
        for flags in variants:
            out.append({"feature": f"dtype: {dtype} {meth}" + (", " + " ".join(flags) if flags else ""),
                        "cfg": cfg, "flags": flags, "demo": False})
    return out


REAL_METHODS = ("ties", "model_stock", "nuslerp", "multislerp", "karcher", "sce", "nearswap", "arcee_fusion")
"""The methods of the real-model rows (a subset: a merge of SmolLM2-135M takes seconds to minutes here)."""


def _last_line(text: str) -> str:
    """The last non-empty line (an error message's summary)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def generate(path: Path) -> str:
    """Load with AutoModelForCausalLM and greedily generate 8 tokens after '12+3='."""
    import torch

    from glue.io.hfconfig import from_pretrained

    tok = from_pretrained("tokenizer", path)
    model = from_pretrained("model", path, dtype=torch.float32)
    ids = tok("12+3=", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
    return repr(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=False))


MERGEKIT_DRIVER = """
import json, sys, yaml
from mergekit.config import MergeConfiguration
from mergekit.merge import MergeOptions, run_merge
jobs, res = json.load(open(sys.argv[1])), {}
for j in jobs:
    try:
        text = open(j["cfg"]).read()
        run_merge(MergeConfiguration.model_validate(yaml.safe_load(text)), j["out"],
                  MergeOptions(copy_tokenizer=j["copy_tokenizer"], quiet=True, write_model_card=False,
                               lora_merge_cache=j["lora_cache"]),
                  config_source=text)
        res[j["out"]] = "ok"
    except Exception as e:
        res[j["out"]] = f"{type(e).__name__}: {e}"
    json.dump(res, open(sys.argv[2], "w"))
"""


def run_mergekit(todo: list[tuple[dict, Path]], args, env) -> dict[str, str]:
    """Run every case's config through mergekit's ``run_merge`` in one process of its venv (what
    ``mergekit-yaml`` calls; one process saves its start-up per case). ``out -> "ok" | error``."""
    scratch = Path(args.scratch)
    (scratch / "mk_driver.py").write_text(MERGEKIT_DRIVER)
    jobs = [{"cfg": str(d / "mk.yaml"), "out": str(d / "mergekit"),
             "copy_tokenizer": "--no-copy-tokenizer" not in c["flags"], "lora_cache": str(d / "mk_lora")}
            for c, d in todo]
    (scratch / "mk_jobs.json").write_text(json.dumps(jobs))
    py = Path(args.mergekit_bin) / "python"
    subprocess.run([str(py), str(scratch / "mk_driver.py"), str(scratch / "mk_jobs.json"),
                    str(scratch / "mk_status.json")], env=env, capture_output=True, text=True)
    return json.loads((scratch / "mk_status.json").read_text())


def run_glue(c: dict, d: Path, out: str = "glue", threads: int | None = None) -> tuple[int, str]:
    """``glue merge`` in this process (``glue.cli.main``) into ``d/out``, with ``--threads threads``
    unless the case gives its own: exit status and stderr."""
    import contextlib
    import io

    from glue.cli import main as glue_main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            flags = c["flags"] + (["--threads", str(threads)] if threads and "--threads" not in c["flags"] else [])
            rc = glue_main(["merge", str(d / "mk.yaml"), "--out", str(d / out), "--no-progress"] + flags)
        except Exception as e:  # noqa: BLE001 - a crash is a finding, reported in the table
            rc, _ = 1, print(f"CRASH {type(e).__name__}: {e}", file=err)
    return rc, err.getvalue()


def compare(c: dict, d: Path, mk_status: str, gl: tuple[int, str], out: str = "glue") -> list[str]:
    mk_ok, gl_ok = mk_status == "ok", gl[0] == 0
    mk_col = "wrote a model" if mk_ok else f"fails: {_last_line(mk_status)[:160]}"
    if not gl_ok:
        left = " (output left behind!)" if (d / out).exists() else ""
        return ["refused" + left, "", "", _last_line(gl[1]).replace(str(d.parent.parent), "…")[:400], mk_col, ""]
    if not mk_ok:
        return ["wrote a model", "", "", "", mk_col, ""]
    a, b = _tensors(d / "mergekit"), _tensors(d / out)
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        diff = sorted(set(a) ^ set(b))[:3] or [k for k in a if a[k].shape != b[k].shape][:3]
        return ["DIFFERENT TENSORS", "", "", f"{diff}", mk_col, ""]
    note = ""
    va, vb = read_vocab(d / "mergekit"), read_vocab(d / out)
    if va and vb and va != vb and set(va) == set(vb) and len(va) == len(vb):
        # mergekit orders a union's new tokens by its tokenizers' hash order (differs run to run): compare by token
        order = [0] * len(va)
        for tok, i in va.items():
            order[i] = vb[tok]
        b = {k: (t[order] if is_vocab_tensor(k) else t) for k, t in b.items()}
        moved = sorted(t for t in va if va[t] != vb[t])
        note = f"same tokens; ids of {moved} differ (mergekit's order is its hash order), compared by token. "
    diff, n = _maxdiff(a, b)
    total = sum(t.numel() for t in a.values())
    tok_files = sorted(p.name for p in (d / out).glob("tokenizer*"))
    mk_tok = sorted(p.name for p in (d / "mergekit").glob("tokenizer*"))
    note += "" if tok_files == mk_tok else f"tokenizer files: glue {tok_files}, mergekit {mk_tok}"
    demo = generate(d / out) if c["demo"] else ""
    verdict = "equal (bit-identical)" if n == 0 else "DIFFERS"
    return [verdict, f"{diff:.3g}", f"{n}/{total} ({100 * n / total:.2f}%)", note, mk_col, demo]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scratch", default="/tmp/glue-mergekit-compat")
    ap.add_argument("--mergekit-bin", default="/tmp/mkvenv/bin")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("-k", default="", help="only cases whose feature contains this text")
    ap.add_argument("--threads", default="1,2", help="glue's --threads values, each case run at each (default 1,2); "
                    "mergekit runs with torch's default")
    ap.add_argument("--real", action="append", default=[], metavar="DTYPE=BASE,FT1,FT2",
                    help="real-model rows instead of the small checkpoints: the parity cases of REAL_METHODS on these "
                         "checkpoint directories, computing in DTYPE (repeatable)")
    ap.add_argument("--methods", help="real-model rows: these methods (comma-separated) instead of REAL_METHODS")
    ap.add_argument("--update", help="a table written before: keep its rows for the cases not run now")
    args = ap.parse_args(argv)
    if not (Path(args.mergekit_bin) / "mergekit-yaml").is_file():
        ap.error(f"no mergekit-yaml in {args.mergekit_bin} (see --help)")
    threads = [int(x) for x in args.threads.split(",")]
    env, root = _env(), Path(args.scratch)
    rows = []
    t0 = time.perf_counter()
    todo = []
    if args.real:
        groups = []
        for spec in args.real:
            dtype, _, paths = spec.partition("=")
            base, *fts = paths.split(",")
            methods = args.methods.split(",") if args.methods else REAL_METHODS
            groups.append((f"real {dtype}", parity_cases(base, fts, dtype, methods)))
    else:
        groups = [(store, cases(build(root / "models", store), store)) for store in ("float32", "bfloat16")]
    for store, cs in groups:
        for i, c in enumerate(cs):
            if args.k and args.k not in c["feature"]:
                continue
            d = root / "runs" / store.replace(" ", "-") / f"{i:02d}"
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            (d / "mk.yaml").write_text(yaml.safe_dump(c["cfg"], sort_keys=False))
            todo.append((dict(c, store=store), d))
    # a config given twice (default and --mergekit-compat) is merged by mergekit once
    first: dict[str, Path] = {}
    mk_todo = [(c, d) for c, d in todo if first.setdefault((d / "mk.yaml").read_text(), d) == d]
    print(f"{len(todo)} cases ({len(mk_todo)} mergekit merges): mergekit ...", file=sys.stderr, flush=True)
    status = run_mergekit(mk_todo, args, env)
    print(f"mergekit done ({time.perf_counter() - t0:.0f} s); glue ...", file=sys.stderr, flush=True)
    for c, d in todo:
        src = first[(d / "mk.yaml").read_text()]
        if src != d:
            (d / "mergekit").symlink_to(src / "mergekit")
        mk = status.get(str(src / "mergekit"), "did not run")
        for t in ([None] if "--threads" in c["flags"] else threads):
            out = f"glue-t{t}" if t else "glue"
            res = compare(c, d, mk, run_glue(c, d, out, t), out)
            rows.append([c["feature"], c["store"], " ".join(c["flags"]), str(t or "")] + res)
            print(f"{c['store']} {c['feature']} threads {t}: {res[0]} {res[1]} {res[2]} {res[3][:100]}",
                  file=sys.stderr, flush=True)
            shutil.rmtree(d / out, ignore_errors=True)  # real checkpoints: 270 MB each
    lines = ["| " + " | ".join(str(x).replace("|", "\\|").replace("\n", " ") for x in r) + " |" for r in rows]
    if args.update:  # the earlier table's rows, with the ones just run replaced in place
        done = {(r[0], r[1], r[3]): line for r, line in zip(rows, lines)}
        old = [ln for ln in Path(args.update).read_text().splitlines() if ln.startswith("| ") and
               not ln.startswith("| feature |")]
        keys = [[c.strip() for c in ln.removeprefix("| ").split(" | ")] for ln in old]
        keys = [(k[0], k[1], k[3]) for k in keys]
        lines = [done.pop(k, ln) for k, ln in zip(keys, old)] + list(done.values())
    print("| feature | checkpoints | glue flags | glue threads | glue outcome | max abs diff | elements differing | "
          "glue message / note | mergekit 0.1.5 | AutoModelForCausalLM generates |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    print(f"\n{len(rows)} rows in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
