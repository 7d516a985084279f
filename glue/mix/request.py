"""Request-level mixture across architectures: a router reads the prompt and sends the whole request to
one expert model, each with its own architecture and tokenizer (beyond Model-GLUE's in-model levels;
the recipe's last step combines clusters of different architectures this way).

The router is any registered router (``ROUTERS``) computed on a *router model* (by default the first
expert): its gate reads the router model's hidden state entering layer ``layer`` (default: the last
layer), pooled over the prompt tokens, and the top-1 expert takes the request. Nothing is merged, so
there are no shape constraints.

Usage::

    mix = RequestMixture.build([ExpertSpec("llama", dir_a, prompts_a), ExpertSpec("qwen", dir_b, prompts_b)])
    mix.route(["12+35=", "sort:3,1,2="])      # -> [0, 1]
    expert_model, expert_tokenizer = mix.experts[i]
    mix.save("out/mixture")                    # request_mixture.json + gate.safetensors (experts by path)
    mix = RequestMixture.load("out/mixture")

Saved form: ``request_mixture.json`` (expert names and directories, the router model, layer, pooling,
the gate's shape, provenance) and ``gate.safetensors``. Expert weights are not copied: each expert is
named by its directory, written relative to the mixture directory when both share a parent (the
recipe's cluster models) and absolute otherwise (zoo members in ``$GLUE_CACHE``).
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from glue.errors import ConfigError
from glue.mix.modeling import Gate, pool
from glue.mix.routers import ROUTERS, RouterContext
from glue.mix.spec import ExpertSpec

REQUEST_FILE = "request_mixture.json"
GATE_FILE = "gate.safetensors"


@dataclass
class RequestMixture:
    """Experts ``[(model, tokenizer)]``, a router model + tokenizer, and its gate (see module docstring)."""

    names: list[str]
    experts: list[tuple[torch.nn.Module, object]]
    router_model: torch.nn.Module
    router_tokenizer: object
    gate: Gate
    layer: int
    routing: str = "prompt_mean"
    info: dict = field(default_factory=dict)

    sources: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, experts: Sequence[ExpertSpec], router: str = "centroids", *, router_source: int | str = 0,
              layer: int | None = None, routing: str = "prompt_mean", seed: int = 0,
              router_params: Mapping | None = None) -> RequestMixture:
        """Validate, load every expert (own class and tokenizer) and compute the gate.

        ``router_source``: the index or name of the expert whose model reads the prompts."""
        from glue.io import load_model

        r = ROUTERS.get(router)
        if not experts:
            raise ConfigError("experts: a request-level mixture needs at least one expert")
        if routing not in ("prompt_mean", "prompt_last"):
            raise ConfigError(f"routing: {routing!r}; a request-level mixture pools the prompt: prompt_mean, prompt_last")
        names = [e.name for e in experts]
        if isinstance(router_source, str):
            if router_source not in names:
                raise ConfigError(f"router_source: {router_source!r} is not an expert ({', '.join(names)})")
            router_source = names.index(router_source)
        if r.needs_prompts:
            for e in experts:
                if not e.prompts:
                    raise ConfigError(f"experts[{e.name!r}].prompts: router {router!r} needs prompts for every expert")
        for e in experts:
            if isinstance(e.source, Mapping) or not os.path.isdir(e.source):
                raise ConfigError(f"experts[{e.name!r}].source: a request-level mixture takes model directories")
        loaded = [load_model(e.source) for e in experts]
        rm, rt = loaded[router_source]
        L = rm.config.num_hidden_layers
        layer = L - 1 if layer is None else layer
        if not 0 <= layer < L:
            raise ConfigError(f"layer: {layer} is out of range for the router model (0..{L - 1})")
        ctx = RouterContext(rm, rt, [layer], "layer_input", routing, [tuple(e.prompts) for e in experts],
                            [tuple(e.negative_prompts) for e in experts], seed)
        params = {**r.defaults, **r.check_params(router_params)}
        g = r.fn(ctx, **params)[0]
        gate = Gate(rm.config.hidden_size, len(experts), "bias" in g, int(g["proj.weight"].shape[0]) if "proj.weight"
                    in g else 0)
        gate.load_state_dict(g)
        return cls(names, loaded, rm, rt, gate.eval(), layer, routing,
                   {"router": router, "router_source": names[router_source], "layer": layer},
                   [str(e.source) for e in experts])

    def save(self, out: str | os.PathLike, record: Mapping | None = None) -> Path:
        """Write ``request_mixture.json`` and ``gate.safetensors`` into the new directory ``out``."""
        import json

        from safetensors.torch import save_file

        out = Path(out)
        if out.exists():
            raise ConfigError(f"output directory {out} already exists")
        out.mkdir(parents=True)
        srcs = []
        for s in self.sources:
            p = Path(s).absolute()
            srcs.append(os.path.relpath(p, out.absolute()) if out.absolute().parent in p.parents else str(p))
        g = self.gate
        meta = {"format": "glue_request_mixture", "version": 1, "experts": [{"name": n, "source": s} for n, s in
                                                                            zip(self.names, srcs)],
                "router_source": self.info.get("router_source", self.names[0]), "layer": self.layer,
                "routing": self.routing, "router": self.info.get("router"),
                "gate": {"in_features": g.proj.in_features if g.proj is not None else int(g.weight.shape[1]),
                         "num_experts": int(g.weight.shape[0]), "bias": g.bias is not None,
                         "hidden": g.proj.out_features if g.proj is not None else 0}, "record": dict(record or {})}
        save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(out / GATE_FILE))
        (out / REQUEST_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> RequestMixture:
        """Load a saved mixture: every expert from its directory, and the gate."""
        import json

        from safetensors.torch import load_file

        from glue.io import load_model

        path = Path(path)
        f = path / REQUEST_FILE
        if not f.is_file():
            raise ConfigError(f"{path}: not a saved request-level mixture (no {REQUEST_FILE})")
        meta = json.loads(f.read_text())
        if meta.get("format") != "glue_request_mixture":
            raise ConfigError(f"{f}: format is {meta.get('format')!r}, expected 'glue_request_mixture'")
        names = [e["name"] for e in meta["experts"]]
        dirs = [(path / e["source"]).resolve() if not os.path.isabs(e["source"]) else Path(e["source"])
                for e in meta["experts"]]
        for n, d in zip(names, dirs):
            if not d.is_dir():
                raise ConfigError(f"{f}: expert {n!r}: model directory {d} does not exist")
        loaded = [load_model(d) for d in dirs]
        gm = meta["gate"]
        gate = Gate(gm["in_features"], gm["num_experts"], gm["bias"], gm["hidden"])
        gate.load_state_dict(load_file(str(path / GATE_FILE)))
        src = names.index(meta["router_source"])
        rm, rt = loaded[src]
        return cls(names, loaded, rm, rt, gate.eval(), int(meta["layer"]), meta["routing"],
                   {"router": meta.get("router"), "router_source": meta["router_source"], "layer": meta["layer"]},
                   [str(d) for d in dirs])

    @torch.no_grad()
    def route(self, prompts: Sequence[str], batch: int = 256) -> list[int]:
        """The expert index of each prompt (top-1 of the gate on the pooled prompt)."""
        out: list[int] = []
        layers = self.router_model.model.layers
        for s in range(0, len(prompts), batch):
            enc = self.router_tokenizer(list(prompts[s : s + batch]), return_tensors="pt", padding=True)
            got = {}

            def grab(mod, args, kwargs):
                got["h"] = args[0] if args else kwargs["hidden_states"]

            h = layers[self.layer].register_forward_pre_hook(grab, with_kwargs=True)
            try:
                self.router_model(**enc)
            finally:
                h.remove()
            x = pool(got["h"].float(), enc["attention_mask"], self.routing)
            out += self.gate(x).argmax(-1).tolist()
        return out
