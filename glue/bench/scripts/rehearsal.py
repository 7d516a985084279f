"""Real-zoo dress rehearsal: a zoo YAML shaped like a real zoo (Which4 by default), whose members sit
under ``$GLUE_MODEL_ROOT/org/name`` with the real hub ids, as small random Llama checkpoints (bf16 on
disk, a shared random base plus perturbed "fine-tunes", the char tokenizer), scored on the surrogate
tasks; then ``make bench MODELS=<that yaml>`` runs to the report, exactly as a user with the real
checkpoints would run it (no hub: the build step only verifies the members on disk).

Every case family runs: single, merge, cluster, mix (experts and their router prompts as on a real zoo:
each task to the member best on it on search, prompts from the tasks' calib splits) and recipe (clusters,
a merge per cluster, the mixture of the clusters), plus ``left_out``: with ``--remote-code-member``
(default on) the zoo also holds ``CrystalChat`` as a checkpoint whose ``config.json`` has an ``auto_map``
(it needs its own Python code), which every case leaves out without ``--trust-remote-code``, recorded with
its reason in the report, and ``make bench`` still exits 0.

Run::

    python -m glue.bench.scripts.rehearsal --dir /tmp/rehearsal            # write, then make bench, timed
    python -m glue.bench.scripts.rehearsal --dir /tmp/rehearsal --write-only
    make rehearsal                                                 # the same, in .cache/rehearsal

``--bench-args`` go to pytest through ``PYTEST_ARGS`` (default: every case family at smoke size, see
``DEFAULT_ARGS``). Results go to ``DIR/results`` (``GLUE_RESULTS``), never into the repository's results/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# every case family (single, merge under 3 strategies x 4 methods, cluster at 2 thresholds) at smoke size;
# --bench-args "" runs the full 35-case bench (the greedy coefficient/similarity strategies take 141 evaluations each)
DEFAULT_ARGS = "--limit 8 --trials 8 --thresholds 0.9,0.99 -k 'not coefficient and not similarity'"
REMOTE = {"name": "CrystalChat", "source": "LLM360/CrystalChat", "family": "crystal",
          "architecture": "LlamaForCausalLM", "role": "finetune"}
"""The rehearsal's remote-code member: Llama weights whose config.json has an ``auto_map`` (CrystalChat's id)."""


def write_models(root: Path, zoo_name: str, hidden: int, layers: int, seed: int = 0, noise: float = 0.05,
                 remote_code_member: bool = False) -> list:
    """Write the base and every member of real zoo ``zoo_name`` as random Llama checkpoints under
    ``root/org/name``; return the zoo's models (base first). Existing complete directories are kept.
    ``remote_code_member``: also ``REMOTE``, a checkpoint whose config.json names code of its own (auto_map)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from glue.io import atomic_dir
    from glue.surrogate.tokenizer import BOS, EOS, PAD, VOCAB_SIZE, char_tokenizer
    from glue.zoo import get_zoo

    zoo = get_zoo(zoo_name)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=64, tie_word_embeddings=False, bos_token_id=BOS, eos_token_id=EOS,
                      pad_token_id=PAD)
    base = LlamaForCausalLM(cfg)
    bases = {zoo.base.family if zoo.base else "": base}  # another weight family: its own random base (Which16's
    models = zoo.all_models()                           # CodeLlama members), so the zoo has several clusters
    if remote_code_member:
        from glue.zoo.spec import Member

        remote = Member(**REMOTE, note="remote-code member: config.json has auto_map")
        models = (*[m for m in models if m.name != remote.name], remote)  # Which16's own CrystalChat replaced
    for i, m in enumerate(models):
        out = root / m.source
        if (out / "config.json").is_file():
            continue
        if m.family not in bases:
            torch.manual_seed(seed + 1000 + len(bases))
            bases[m.family] = LlamaForCausalLM(cfg)
        model = LlamaForCausalLM(cfg)
        model.load_state_dict(bases[m.family].state_dict())
        if m is not zoo.base:
            g = torch.Generator().manual_seed(seed + 1 + i)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(noise * p.std() * torch.randn(p.shape, generator=g))
        with atomic_dir(out) as tmp:
            model.to(torch.bfloat16).save_pretrained(tmp)
            char_tokenizer().save_pretrained(tmp)
            if m.name == REMOTE["name"]:
                import json

                c = json.loads((tmp / "config.json").read_text())
                c["auto_map"] = {"AutoConfig": "configuration_crystalcoder.CrystalCoderConfig",
                                 "AutoModelForCausalLM": "modeling_crystalcoder.CrystalCoderLMHeadModel"}
                (tmp / "config.json").write_text(json.dumps(c, indent=2))
    return list(models)


def write_yaml(path: Path, zoo_name: str, models: list) -> Path:
    """The rehearsal zoo: the real zoo's members by hub id, the surrogate tasks."""
    import yaml

    from glue.surrogate.skills import EVAL_SKILLS

    def entry(m):
        return {"name": m.name, "source": m.source, "family": m.family, "architecture": m.architecture,
                "role": m.role}

    base, members = models[0], models[1:]
    doc = {"name": f"{zoo_name}-rehearsal",
           "description": f"dress rehearsal of {zoo_name}: real hub ids, small random Llama weights, surrogate tasks",
           "tasks": list(EVAL_SKILLS), "base": entry(base), "members": [entry(m) for m in members]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dir", type=Path, required=True, help="working folder: models/, the zoo YAML, results/")
    p.add_argument("--zoo", default="which4", help="real zoo to shape the rehearsal like (default which4)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--write-only", action="store_true", help="write the models and the YAML, do not bench")
    p.add_argument("--no-remote-code-member", dest="remote_code_member", action="store_false",
                   help="leave out the remote-code member (CrystalChat with an auto_map; see the module docstring)")
    p.add_argument("--bench-args", default=DEFAULT_ARGS, help=f"PYTEST_ARGS of make bench (default {DEFAULT_ARGS!r})")
    args = p.parse_args(argv)
    root = args.dir.resolve() / "models"
    t0 = time.perf_counter()
    models = write_models(root, args.zoo, args.hidden, args.layers, remote_code_member=args.remote_code_member)
    yaml_path = write_yaml(args.dir.resolve() / f"{args.zoo}_rehearsal.yaml", args.zoo, models)
    print(f"rehearsal: {len(models)} models under {root}, zoo {yaml_path} ({time.perf_counter() - t0:.1f} s)",
          file=sys.stderr)
    if args.write_only:
        print(yaml_path)
        return 0
    env = {**os.environ, "GLUE_MODEL_ROOT": str(root), "GLUE_RESULTS": str(args.dir.resolve() / "results")}
    env.pop("HF_HUB_OFFLINE", None)  # the build step must find everything on disk, with the hub allowed
    t1 = time.perf_counter()
    rc = subprocess.call(["make", "-C", str(REPO), "bench", f"MODELS={yaml_path}", f"PYTEST_ARGS={args.bench_args}"],
                         env=env)
    wall = time.perf_counter() - t1
    report = args.dir.resolve() / "results" / f"{args.zoo}-rehearsal" / "report.md"
    print(f"\nrehearsal: make bench MODELS={yaml_path} exited {rc} after {wall:.0f} s ({wall / 60:.1f} min)")
    if report.is_file():
        text = report.read_text()
        print(f"report: {report}\n" + "\n".join(text.splitlines()[:30]))
        left = [ln for ln in text.splitlines() if "left_out" in ln or "left out" in ln]
        if left:
            print("report lines on members left out:\n" + "\n".join(left))
    return rc


if __name__ == "__main__":
    sys.exit(main())
