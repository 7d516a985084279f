"""glue mix CONFIG.yaml --out DIR [--overwrite]   (glue's mixture YAML or mergekit-moe's)
glue mix --list"""

from __future__ import annotations

from glue.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("mix", help="build a mixture of experts from a mixture config (glue or mergekit-moe format)",
                       description="Build an FFN-, block- or model-level mixture into DIR: the whole config is "
                                   "validated before any weight is read and DIR appears only when complete. An "
                                   "ffn_level mixture with token routing (every mergekit-moe config) is written as "
                                   "a standard MixtralForCausalLM checkpoint.")
    p.add_argument("config", nargs="?", help="mixture config YAML (glue or mergekit-moe format)")
    p.add_argument("--out", "-o", help="output directory (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it exists")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0 = torch's default)")
    p.add_argument("--list", action="store_true", help="list the levels and routers and exit")
    p.set_defaults(func=_mix)


def _mix(args) -> int:
    if args.list:
        return _list()
    if not args.config or not args.out:
        raise ConfigError("usage: glue mix CONFIG.yaml --out DIR (or glue mix --list)")
    import time

    from glue.mix.config import load_mix_config
    from glue.mix.spec import check_mixture, mix_inputs
    from glue.safety import check_output

    t0 = time.perf_counter()
    spec, fmt = load_mix_config(args.config)
    try:
        mix = check_mixture(spec)  # every field and the experts' config.json, before torch is imported; once
    except ConfigError as e:
        raise ConfigError(f"{args.config}: {e}") from None
    check_output(args.out, inputs=[*mix_inputs(mix), args.config], overwrite=args.overwrite)
    import torch

    from glue.mix.build import save_mixture

    if args.threads:
        torch.set_num_threads(args.threads)
    out = save_mixture(mix, args.out, overwrite=args.overwrite)
    kind = "MixtralForCausalLM" if mix.mixtral_layout else "GlueMixtureForCausalLM"
    print(f"mixed {len(mix.experts)} experts ({fmt} config {args.config}): {mix.level.name}, router "
          f"{mix.router.name}, routing {mix.routing}, top-{mix.top_k}, {mix.dense_layers} dense layers")
    for e in mix.experts:
        print(f"  {e.name}: {e.source}  ({len(e.prompts)} prompts, {len(e.negative_prompts)} negative)")
    print(f"  output: {out}  {kind} ({mix.dtype}), {time.perf_counter() - t0:.2f} s")
    return 0


def _list() -> int:
    import pandas as pd

    from glue.mix import LEVELS, ROUTERS
    from glue.record.tables import render

    print(render(pd.DataFrame([{"level": n, "routing inputs": ", ".join(lv.routings), "gate reads": lv.gate_point,
                                "what": lv.doc} for n, lv in LEVELS.items()])))
    print()
    print(render(pd.DataFrame([{"router": n, "prompts": "yes" if r.needs_prompts else "", "fitted": "yes" if r.fitted
                                else "", "params (defaults)": ", ".join(f"{k}={p.default} ({p.allowed})"
                                                                        for k, p in r.params.items()),
                                "what": r.doc} for n, r in ROUTERS.items()])))
    return 0
