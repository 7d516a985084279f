"""GPU machine check, end to end (``make gpu-check``): is this machine ready for a 7B real zoo, and how fast?

Steps, each recorded as a case of the pseudo-zoo ``gpu-check`` in the run store (``results/gpu-check/``,
``$GLUE_RESULTS``), with the device, GPU name and ``torch.cuda.max_memory_allocated`` like every record:

1. ``gpucheck-copy``: the device's copy bandwidth (``dst.copy_(src)`` of a 1 GiB buffer; bytes read + written
   per second), the yardstick of the merge.
2. three random checkpoints of the shape (``7b``: Llama-2-7B, 6.7 B parameters, bf16, 12.6 GiB each) are
   written to ``--dir`` on this machine: a base and two "fine-tunes" (base + noise); not timed as a case.
3. ``gpucheck-merge``: a streaming task-arithmetic merge of the two fine-tunes onto the base, math on the
   device (``glue.merge.merge_checkpoints``): GB/s of checkpoint bytes read + written, and its ratio to
   the copy bandwidth.
4. ``gpucheck-similarity``: the per-column cosine similarity of 4 such models (base, fine-tunes, merge) in
   one pass on the device (``glue.cluster.similarity_matrix``).
5. ``gpucheck-lmeval``: one lm-eval run (a surrogate task, the merged model in bf16 on the device, the
   batch size lm-eval probes): items/s.
6. ``gpucheck-mix-<level>``: prefill and generation tokens/s of a dense model and of 2-expert mixtures at each
   level (``ffn_level`` token routing top-2, ``block_level`` and ``model_level`` top-1; random routers, whose
   speed is any router's), built on the device in bf16 (``glue.mix.build_mixture``); batch 8, a 128-token
   prefill and 32 greedy new tokens with the KV cache; median of 3 after a warm-up (1 on the CPU dry run). At ``--mix-shape``
   (default ``small``: a 7B mixture is assembled on the host first, minutes and ~60 GB, too long for this
   check; its speed per token scales with the expert's).

Run::

    make gpu-check                                        # --device cuda --shape 7b, under 8 minutes on an H200
    python -m glue.bench.scripts.gpu_check --device cpu --shape tiny --dir /tmp/gc   # the CPU dry run (seconds)

Disk: 4 x the checkpoint size under ``--dir`` (50.5 GiB for 7b), deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

import torch  # noqa: E402

SHAPES = {  # LlamaConfig fields
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32, vocab_size=32000),
    "small": dict(hidden_size=1024, intermediate_size=2752, num_hidden_layers=8, num_attention_heads=8,
                  num_key_value_heads=8, vocab_size=32000),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4, vocab_size=320),
}
ZOO = "gpu-check"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def copy_bandwidth(device: str, nbytes: int, repeats: int = 10) -> dict:
    """Bytes read + written per second by ``dst.copy_(src)`` on ``device`` (best of ``repeats``)."""
    src = torch.empty(nbytes // 2, dtype=torch.bfloat16, device=device).normal_()
    dst = torch.empty_like(src)
    dst.copy_(src)
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return {"bytes": nbytes, "gbps": 2 * nbytes / best / 1e9, "seconds_best": best}


def write_checkpoints(root: Path, shape: str, device: str, n: int = 3, noise: float = 0.01) -> list[Path]:
    """Write ``n`` random Llama checkpoints of ``shape`` (bf16, sharded, with the char tokenizer): a base and
    ``n - 1`` copies plus Gaussian noise. Tensors are drawn on ``device`` (fast) and written one by one."""
    from transformers import LlamaConfig

    from glue.io import ShardedWriter
    from glue.surrogate.tokenizer import BOS, EOS, PAD, char_tokenizer

    cfg = LlamaConfig(**SHAPES[shape], max_position_embeddings=4096, tie_word_embeddings=False,
                      bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, dtype="bfloat16")
    cfg.architectures = ["LlamaForCausalLM"]
    h, f, L, V = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    shapes = {"model.embed_tokens.weight": (V, h), "model.norm.weight": (h,), "lm_head.weight": (V, h)}
    for i in range(L):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)})
        shapes.update({p + f"self_attn.{k}_proj.weight": (h, h) for k in "qkvo"})
        shapes.update({p + "mlp.gate_proj.weight": (f, h), p + "mlp.up_proj.weight": (f, h),
                       p + "mlp.down_proj.weight": (h, f)})
    dirs = [root / ("base" if j == 0 else f"ft{j}") for j in range(n)]
    writers = [ShardedWriter(d) for d in dirs]
    g = torch.Generator(device=device).manual_seed(0)
    for name, shp in shapes.items():
        if name.endswith("norm.weight"):
            base = torch.ones(shp, device=device, dtype=torch.bfloat16)
        else:
            base = (torch.randn(shp, generator=g, device=device) * 0.02).to(torch.bfloat16)
        for j, w in enumerate(writers):
            t = base if j == 0 else (base.float() + noise * 0.02 * torch.randn(shp, generator=g, device=device))
            w.add(name, t.to(torch.bfloat16).cpu())
    for d, w in zip(dirs, writers):
        w.close()
        cfg.save_pretrained(d)
        char_tokenizer().save_pretrained(d)
    return dirs


MIX_LEVELS = {"ffn_level": dict(routing="token", top_k=2), "block_level": dict(top_k=1), "model_level": dict(top_k=1)}
MIX_LOAD = {"batch": 8, "prompt_tokens": 128, "new_tokens": 32}


def mixture_experts(shape: str, n: int = 2, seed: int = 0):
    """``(dense model, [ExpertSpec])``: a random Llama of ``shape`` (float32, CPU) and ``n`` experts = it plus
    N(0, 0.02^2) noise."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from glue.mix import ExpertSpec

    torch.manual_seed(seed)
    cfg = LlamaConfig(**SHAPES[shape], max_position_embeddings=4096, tie_word_embeddings=False, bos_token_id=1,
                      eos_token_id=2, pad_token_id=0)
    base = LlamaForCausalLM(cfg).eval()
    conf = {**cfg.to_dict(), "model_type": "llama"}
    return base, [ExpertSpec(f"e{i}", {k: v + 0.02 * torch.randn_like(v) for k, v in base.state_dict().items()},
                             config=conf) for i in range(n)]


def mixture_speed(level: str, experts, device: str, runs: int = 3) -> dict:
    """Prefill and generation tokens/s (``MIX_LOAD``) of the dense model or a mixture at ``level``, in bf16
    on CUDA (float32 on the CPU)."""
    from glue.bench.speed import time_generation
    from glue.mix import MixSpec, build_mixture

    base, specs = experts
    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if level == "dense":
        import copy

        model = copy.deepcopy(base).to(device=device, dtype=getattr(torch, dtype)).eval()
    else:
        model = build_mixture(MixSpec(level, "random", specs, dtype=dtype, **MIX_LEVELS[level]), device=device).model
    b, n, new = MIX_LOAD["batch"], MIX_LOAD["prompt_tokens"], MIX_LOAD["new_tokens"]
    ids = torch.randint(3, base.config.vocab_size, (b, n), generator=torch.Generator().manual_seed(1)).to(device)
    # the one throughput timer of the benchmarks: median of ``runs`` after a warm-up, synchronised on CUDA
    t = time_generation(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, new, runs=runs,
                        warmup=True, pad_token_id=0)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"prefill_tok_s": t.prefill_tok_s, "gen_tok_s": t.gen_tok_s, "dtype": dtype}


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.safetensors"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (a dry run of the same steps)")
    p.add_argument("--shape", choices=sorted(SHAPES), default="7b", help="checkpoint shape (default 7b)")
    p.add_argument("--dir", type=Path, default=None, help="where the checkpoints are written (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the checkpoints")
    p.add_argument("--copy-gib", type=float, default=1.0, help="buffer of the copy-bandwidth probe (GiB)")
    p.add_argument("--limit", type=int, default=64, help="items of the lm-eval run")
    p.add_argument("--mix-shape", choices=sorted(SHAPES), default=None,
                   help="shape of the mixture experts (default: small; tiny with --shape tiny)")
    args = p.parse_args(argv)
    from glue.eval import EvalSpec
    from glue.record.recorder import Recorder

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu-check: no CUDA device visible to torch {torch.__version__}; "
              f"`--device cpu --shape tiny` runs the CPU dry run", file=sys.stderr)
        return 2
    rec = Recorder(ZOO, EvalSpec(("add",), split="test", evaluator="lmeval", limit=args.limit, device=args.device),
                   rerun=True)
    t_all = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="glue-gpu-check-", dir=args.dir))
    rows = []

    def record(case: str, config: dict, fn):
        r = rec.measure(case, {"shape": args.shape, **config}, fn)
        rows.append(r)
        figures = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.extra.items())
        print(f"{case:22s} {r.wall_seconds:7.1f} s  peak_cuda_mb={r.peak_cuda_mb}  {figures}", file=sys.stderr)
        return r

    try:
        nbytes = int(args.copy_gib * 2**30) if args.shape == "7b" else 2**24
        copy = record("gpucheck-copy", {"bytes": nbytes},
                      lambda: {"extra": {"copy_gbps": copy_bandwidth(args.device, nbytes)["gbps"]}})
        copy_gbps = copy.extra["copy_gbps"]
        t0 = time.perf_counter()
        dirs = write_checkpoints(work, args.shape, args.device)
        size = dir_bytes(dirs[0])
        print(f"{'(write checkpoints)':22s} {time.perf_counter() - t0:7.1f} s  3 x {size / 2**30:.2f} GiB "
              f"({3 * size / (time.perf_counter() - t0) / 1e9:.2f} GB/s to disk)", file=sys.stderr)

        def merge():
            from glue.merge import MergeSpec, merge_checkpoints

            res = merge_checkpoints(MergeSpec("task_arithmetic", weights=[0.5, 0.5]), dirs[1:], work / "merged",
                                    base=dirs[0], device=args.device, progress=False)
            moved = 3 * size + dir_bytes(work / "merged")
            return {"build_seconds": res.seconds,
                    "extra": {"bytes_moved": moved, "merge_gbps": moved / res.seconds / 1e9,
                              "vs_copy_bandwidth": moved / res.seconds / 1e9 / copy_gbps}}

        record("gpucheck-merge", {"method": "task_arithmetic", "models": 2, "base": True}, merge)

        def similarity():
            from glue.cluster.similarity import similarity_matrix

            models = {d.name: d for d in [*dirs, work / "merged"]}
            s = similarity_matrix(models, device=args.device)
            return {"extra": {"models": len(models), "seconds": s.seconds,
                              "read_gbps": 4 * size / s.seconds / 1e9,
                              "min_sim_all": float(s.all.min())}}

        record("gpucheck-similarity", {"models": 4}, similarity)

        def lmeval():
            from glue.eval import evaluate
            from glue.io import load_model

            model, tok = load_model(work / "merged", device=args.device)
            res = evaluate(model, tok, ["add"], split="test", evaluator="lmeval", limit=args.limit)
            return {"scores": res.scores, "n": res.n, "eval_seconds": res.seconds,
                    "extra": {"items_per_s": sum(res.n.values()) / res.seconds,
                              "dtype": str(next(model.parameters()).dtype)}}

        record("gpucheck-lmeval", {"task": "add"}, lmeval)
        mix_shape = args.mix_shape or ("tiny" if args.shape == "tiny" else "small")
        experts = mixture_experts(mix_shape)
        for level in ("dense", *MIX_LEVELS):
            record(f"gpucheck-mix-{level}", {"level": level, "mix_shape": mix_shape, "experts": 2, **MIX_LOAD},
                   lambda level=level: {"extra": mixture_speed(level, experts, args.device,
                                                               runs=3 if args.device.startswith("cuda") else 1)})
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - t_all
    gpu = rows[0].provenance.machine.get("gpu") if rows else None
    print(f"gpu-check: {len(rows)} records in {rec.root / ZOO} ({gpu or 'no GPU'}, {args.device}, "
          f"shape {args.shape}), {total:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
