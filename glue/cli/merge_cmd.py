"""glue merge CONFIG.yaml --out DIR [--device cpu|cuda] [--dtype D] [--vocab-policy P] [--seed N] [--overwrite]
    [--mergekit-compat] [--no-copy-tokenizer]
glue merge --list"""

from __future__ import annotations

import re
import sys

from glue.errors import ConfigError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"2GB"``, ``"500M"``, ``"1.5GiB"``, ``"1048576"`` -> bytes (K/M/G/T are powers of 1000, with i of 1024)."""
    m = _SIZE.match(str(text))
    if not m:
        raise ConfigError(f"invalid size {text!r}; examples: 2GB, 500MB, 1GiB, 1048576")
    num, unit, suffix = float(m.group(1)), m.group(2).upper(), (m.group(3) or "").lower()
    scale = (1024 if suffix.startswith("i") else 1000) ** "_KMGT".index(unit or "_")
    return int(num * scale)


def register(sub) -> None:
    from glue.cli import VERBS

    p = sub.add_parser("merge", help=VERBS["merge"],
                       description="Stream a merge of safetensors checkpoints, tensor by tensor, into DIR. "
                                   "CONFIG is glue's merge YAML or a mergekit merge config.")
    p.add_argument("config", nargs="?", help="merge config YAML (glue or mergekit format)")
    p.add_argument("--out", "-o", help="output directory (must not exist unless --overwrite)")
    p.add_argument("--device", default="cpu", help="where the math runs: cpu, cuda, cuda:N (default cpu)")
    # choices are checked with the config (glue.merge.config.validate), not here: `glue merge --help`
    # imports no torch
    p.add_argument("--dtype", help="output dtype: float32, bfloat16 or float16 (default: the config's, else the "
                   "reference model's)")
    p.add_argument("--vocab-policy", help="vocabulary size mismatch: error (default) or truncate to the base's rows")
    p.add_argument("--seed", type=int, help="seed of randomized methods (default: the config's, else 0)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.add_argument("--shard-size", default="2GB", help="maximum output shard size (default 2GB)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the math (default 1: the merge "
                   "is memory-bound; 0 = torch's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--mergekit-compat", action="store_true",
                   help="reproduce mergekit's bytes: compute in the config's dtype (mergekit's meaning) and rank "
                        "magnitudes as mergekit does, instead of glue's float32 arithmetic; its kernels run with "
                        "mergekit's thread count (torch's default, or $GLUE_MERGEKIT_THREADS), whatever --threads says")
    p.add_argument("--no-copy-tokenizer", action="store_true", help="write no tokenizer files into DIR")
    p.add_argument("--list", action="store_true", help="list the merge methods and exit")
    p.set_defaults(func=_merge)


def _merge(args) -> int:
    if args.list:
        return _list()
    if not args.config or not args.out:
        raise ConfigError("usage: glue merge CONFIG.yaml --out DIR (or glue merge --list)")
    from pathlib import Path

    if not Path(args.config).is_file():  # before importing the merge package (torch): a typo costs milliseconds
        raise ConfigError(f"merge config {args.config} does not exist")
    from glue.merge.config import load_config
    from glue.zoo import member_dir

    cfg = load_config(args.config, members=member_dir).with_overrides(
        dtype=args.dtype, vocab_policy=args.vocab_policy, seed=args.seed, mergekit_compat=args.mergekit_compat,
        copy_tokenizer=False if args.no_copy_tokenizer else None)
    notice = cfg.parity_notice()
    if notice:
        print(notice, file=sys.stderr)
    res = cfg.run(args.out, device=args.device, overwrite=args.overwrite, max_shard_bytes=parse_size(args.shard_size),
                  progress=False if args.no_progress else None, threads=args.threads or None)
    spec = cfg.spec
    print(f"merged {len(cfg.models)} models with {cfg.method} ({cfg.format} config {args.config})"
          + (f", mergekit-compatible arithmetic in {cfg.compute_dtype}" if cfg.compute_dtype else ""))
    for i, m in enumerate(cfg.models):
        coeffs = [f"{k} {v:g}" if isinstance(v, float) else f"{k} per tensor"
                  for k, v in (("weight", m.weight), ("density", m.density)) if v is not None]
        print(f"  model {i}: {m.name}" + (f"  ({', '.join(coeffs)})" if coeffs else ""))
    if cfg.base:
        print(f"  base:    {cfg.base.name}")
    extras = [f"{k}={v}" for k, v in spec.params.items()] + ([f"seed={spec.seed}"] if spec.seed is not None else [])
    if extras:
        print(f"  params:  {', '.join(extras)}")
    print(f"  output:  {res.out}  {res.n_tensors} tensors, {_human(res.bytes)} ({res.dtype}), "
          f"device {res.device}, {res.seconds:.2f} s")
    return 0


def _list() -> int:
    import pandas as pd

    from glue.merge import METHODS
    from glue.record.tables import render

    rows = [{"method": n, "base": "yes" if m.needs_base else "optional" if m.uses_base else "",
             "seeded": "yes" if m.randomized else "",
             "per model": ", ".join(m.per_model), "models": str(m.min_models) if m.max_models == m.min_models else f"{m.min_models}+",
             "params (defaults)": ", ".join(f"{p.name}={p.default} ({p.allowed})" for p in m.params),
             "mergekit-compat": "yes" if m.compat_fn else "", "paper": m.paper}
            for n, m in METHODS.items()]
    print(render(pd.DataFrame(rows)))
    return 0


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
