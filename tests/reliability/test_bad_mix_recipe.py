"""Issue 25: ``glue mix`` and ``glue recipe`` as a hostile user would run them, and ``--overwrite`` of every
kind of input. One test per kind: glue exits 2 with an error naming the field (or the path and what it
is), no traceback, and the test's whole tmp tree and the cache are byte-for-byte as before
(``rel.refused``). Kinds are ``setup(ctx) -> (argv | callable, [expected substrings])``; ``setup``
prepares files before the snapshot.

Data loss (items 1-5): the output may not be, contain or sit inside an input (experts, ``shared``,
mergekit-moe ``base_model``, tokenizer source, zoo members, a recipe's own inputs), the cache or the
results root, and ``--overwrite`` replaces only a glue *output* (a zoo member glue built is not one).
Remote code (item 8, without a terminal; the pseudo-terminal runs are in ``test_remote_code.py``).
``glue mix`` validation (items 9-10) and ``glue recipe --spec`` validation before any work (item 11).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from glue.safety import MARKER

PROMPTS = {"tiny_ft_add": ["12+35=", "7+8="], "tiny_ft_cmp": ["3<5?", "9<2?"], "tiny_base": ["hello"]}


@dataclass
class Ctx:
    tmp: Path
    models: dict[str, Path]
    monkeypatch: pytest.MonkeyPatch

    def out(self) -> str:
        return str(self.tmp / "out")

    def write(self, name: str, data) -> str:
        p = self.tmp / name
        p.write_text(yaml.safe_dump(data, sort_keys=False))
        return str(p)

    def experts(self, *names: str, router_prompts: bool = True) -> list[dict]:
        names = names or ("tiny_ft_add", "tiny_ft_cmp")
        return [{"name": n.removeprefix("tiny_"), "model": str(self.models[n]),
                 **({"prompts": PROMPTS[n]} if router_prompts else {})} for n in names]

    def mix(self, **fields) -> str:
        """A valid glue mixture (ffn_level, random router: no tokenizer, quick) with ``fields`` replaced."""
        cfg = {"level": "ffn_level", "router": "random", "experts": self.experts(), **fields}
        return self.write("mix.yaml", cfg)

    def centroids(self, **fields) -> str:
        return self.mix(router="centroids", level="block_level", **fields)

    def moe(self, **fields) -> str:
        """A valid mergekit-moe config (base_model tiny_base) with ``fields`` replaced."""
        cfg = {"base_model": str(self.models["tiny_base"]), "gate_mode": "random", "experts": [
            {"source_model": str(self.models[n]), "positive_prompts": PROMPTS[n]} for n in ("tiny_ft_add", "tiny_ft_cmp")],
            **fields}
        return self.write("moe.yaml", cfg)

    def linear(self, **extra) -> str:
        return self.write("merge.yaml", {"method": "linear", "models": [
            {"model": str(self.models[n]), "weight": 0.5} for n in ("tiny_ft_add", "tiny_ft_cmp")], **extra})

    def glue_output(self, path: Path, kind: str = "merge") -> Path:
        """Mark ``path`` as an output of a glue verb (as a merge output used as an input would be)."""
        (path / MARKER).write_text(json.dumps({"written_by": "glue", "kind": kind}) + "\n")
        return path

    def recipe(self, **fields) -> list[str]:
        """``glue recipe --spec S --out OUT`` for the tiny zoo, with ``fields`` of the spec."""
        spec = {"zoo": "tiny", "eval": {"limit": 1}, "search": {"enabled": False}, **fields}
        return ["recipe", "--spec", self.write("recipe.yaml", spec), "--out", self.out(), "--quiet"]

    def zoo_yaml(self) -> str:
        return self.write("z.yaml", {"name": "z", "tasks": ["add", "cmp"], "members": [
            {"name": n, "source": str(self.models[n])} for n in ("tiny_ft_add", "tiny_ft_cmp")]})


def _nan_expert(c: Ctx):
    import torch
    from safetensors.torch import load_file, save_file

    f = c.models["tiny_ft_cmp"] / "model.safetensors"
    sd = load_file(str(f))
    sd["model.layers.1.mlp.up_proj.weight"][3, 5] = torch.nan
    save_file(sd, str(f), metadata={"format": "pt"})
    return ["mix", c.mix(), "--out", c.out()], ["NaN/Inf", "model.layers.1.mlp.up_proj.weight", "expert 'ft_cmp'"]


def _symlink_twice(c: Ctx):
    link = c.tmp / "alias"
    link.symlink_to(c.models["tiny_ft_add"])
    ex = c.experts()
    ex[1]["model"] = str(link)
    return ["mix", c.mix(experts=ex), "--out", c.out()], ["'ft_add' and 'ft_cmp' are the same model"]


def _prompt(value):
    def setup(c: Ctx):
        ex = c.experts()
        ex[1]["prompts"] = ["3<5?", value]
        return ["mix", c.centroids(experts=ex), "--out", c.out()], ["experts['ft_cmp'].prompts[1]", "non-empty"]
    return setup


def _shared_is_glue_merge(c: Ctx):  # item 1: the shared model, a merge output, under --overwrite
    shared = c.glue_output(c.models["tiny_base"])
    return ["mix", c.mix(shared=str(shared)), "--out", str(shared), "--overwrite"], ["is one of the inputs",
                                                                                     str(shared)]


def _base_model_is_glue_merge(c: Ctx):  # item 1: mergekit-moe base_model
    base = c.glue_output(c.models["tiny_base"])
    return ["mix", c.moe(), "--out", str(base), "--overwrite"], ["is one of the inputs", str(base)]


def _recipe_dir_holding_expert(c: Ctx):  # item 2
    rdir = c.tmp / "recipe"
    cl = Path(shutil.copytree(c.models["tiny_ft_add"], rdir / "clusters" / "cluster0"))
    c.glue_output(rdir, "recipe")
    c.glue_output(cl, "merge")
    ex = c.experts()
    ex[0]["model"] = str(cl)
    return ["mix", c.mix(experts=ex), "--out", str(rdir), "--overwrite"], ["contains the input", str(cl)]


def _cache_member(verb: str):  # item 3: $GLUE_CACHE/surrogate/<member> (a throwaway cache: nothing real at stake)
    def setup(c: Ctx):
        cache = c.tmp / "cache"
        member = Path(shutil.copytree(c.models["tiny_ft_cmp"], cache / "surrogate" / "tiny_ft_cmp-0123456789ab"))
        c.glue_output(member, "surrogate")
        c.monkeypatch.setenv("GLUE_CACHE", str(cache))
        cfg = c.linear() if verb == "merge" else c.mix()
        return [verb, cfg, "--out", str(member), "--overwrite"], ["lies inside glue's cache", str(cache)]
    return setup


def _recipe_over_member(c: Ctx):  # item 3: glue recipe --zoo z.yaml --out <a member of z>
    member = c.glue_output(c.models["tiny_ft_cmp"])
    return (["recipe", "--zoo", c.zoo_yaml(), "--out", str(member), "--overwrite", "--no-search", "--limit", "1",
             "--quiet"], ["is one of the inputs", str(member)])


def _results_zoo(overwrite: bool):  # item 4: $GLUE_RESULTS/tiny, fresh and after a bench wrote into it
    def setup(c: Ctx):
        d = c.tmp / "results" / "tiny"
        if overwrite:
            (d / "runs").mkdir(parents=True)
            (d / "runs" / "2026-12-07-abcdef0.jsonl").write_text('{"case": "single-x"}\n')
            (d / "results.csv").write_text("case,average\nsingle-x,0.5\n")
            c.glue_output(d)
        return ["merge", c.linear(), "--out", str(d), *(["--overwrite"] if overwrite else [])], [
            "lies inside the results root", str(c.tmp / "results")]
    return setup


def _nested_in_expert(c: Ctx):  # item 5
    return ["mix", c.mix(), "--out", str(c.models["tiny_ft_add"] / "nested")], ["inside the input model directory",
                                                                                str(c.models["tiny_ft_add"])]


def _symlinked_out(c: Ctx):
    link = c.tmp / "link-to-expert"
    link.symlink_to(c.models["tiny_ft_cmp"])
    c.glue_output(c.models["tiny_ft_cmp"])
    return ["mix", c.mix(), "--out", str(link), "--overwrite"], ["is one of the inputs"]


def _tokenizer_source_out(c: Ctx):
    tok = c.glue_output(c.models["tiny_base"])
    return ["merge", c.linear(tokenizer_source=str(tok)), "--out", str(tok), "--overwrite"], [
        "is one of the inputs", str(tok)]


def _zoo_member_not_output(c: Ctx):
    d = Path(shutil.copytree(c.models["tiny_base"], c.tmp / "a-member"))
    c.glue_output(d, "surrogate")
    return ["mix", c.mix(), "--out", str(d), "--overwrite"], ["not a glue output", "'surrogate'", "zoo member"]


def _spec_inside_out(c: Ctx):
    old = c.tmp / "old-recipe"
    old.mkdir()
    c.glue_output(old, "recipe")
    spec = old / "recipe.yaml"
    spec.write_text(yaml.safe_dump({"zoo": "tiny", "search": {"enabled": False}}))
    return ["recipe", "--spec", str(spec), "--out", str(old), "--overwrite", "--quiet"], ["contains the input",
                                                                                         str(spec)]


def _config_inside_out(c: Ctx):
    d = c.tmp / "run"
    d.mkdir()
    c.glue_output(d, "mix")
    cfg = d / "mix.yaml"
    cfg.write_text(Path(c.mix()).read_text())
    return ["mix", str(cfg), "--out", str(d), "--overwrite"], ["contains the input", str(cfg)]


def _remote(where: str):  # item 8, without a terminal
    def setup(c: Ctx):
        m = c.models["tiny_ft_cmp"]
        f = m / ("tokenizer_config.json" if where == "tokenizer" else "config.json")
        d = json.loads(f.read_text())
        if where == "model_type":
            d["model_type"] = "crystalcoder"
        else:
            d["auto_map"] = {"AutoTokenizer" if where == "tokenizer" else "AutoModelForCausalLM": "evil.Evil"}
        f.write_text(json.dumps(d))
        (m / "evil.py").write_text("raise SystemExit('ran remote code')\n")
        why = "model_type 'crystalcoder'" if where == "model_type" else "auto_map"
        return f, why
    return setup


def _merge_remote(where: str):
    def setup(c: Ctx):
        f, why = _remote(where)(c)
        return ["merge", c.linear(), "--out", c.out()], [str(f), why, "needs its own Python code",
                                                        "trust_remote_code=False"]
    return setup


def _merge_tokenizer_source_remote(c: Ctx):
    f, why = _remote("tokenizer")(c)
    cfg = c.write("merge.yaml", {"method": "linear", "models": [
        {"model": str(c.models[n]), "weight": 0.5} for n in ("tiny_ft_add", "tiny_base")],
        "tokenizer_source": str(c.models["tiny_ft_cmp"])})
    return ["merge", cfg, "--out", c.out()], ["tokenizer_source", str(f), "needs its own Python code"]


def _mix_remote(c: Ctx):
    f, why = _remote("model")(c)
    return ["mix", c.mix(), "--out", c.out()], ["expert 'ft_cmp'", str(f), "needs its own Python code"]


def _select_remote(c: Ctx):
    f, why = _remote("tokenizer")(c)
    return ["select", "--zoo", c.zoo_yaml(), "--strategy", "all", "--method", "linear", "--out", c.out(), "--limit",
            "1", "--quiet"], ["member 'tiny_ft_cmp'", str(f), "needs its own Python code"]


def _moe_field(**fields):
    return lambda c: (["mix", c.moe(**fields), "--out", c.out()], [next(iter(fields)) if "experts_per_token" not in
                                                                    fields else "top_k"])


KINDS = {
    # -- data loss: --overwrite of each input kind, nesting (items 1-5)
    "mix --overwrite the shared model (a merge output)": _shared_is_glue_merge,
    "mix --overwrite the mergekit-moe base_model": _base_model_is_glue_merge,
    "mix --overwrite a recipe dir holding an expert": _recipe_dir_holding_expert,
    "merge --overwrite a cache zoo member": _cache_member("merge"),
    "mix --overwrite a cache zoo member": _cache_member("mix"),
    "recipe --overwrite a member of its zoo": _recipe_over_member,
    "merge into the results root's zoo folder": _results_zoo(False),
    "merge --overwrite a results folder after a bench": _results_zoo(True),
    "mix output nested inside an expert": _nested_in_expert,
    "mix --overwrite a symlink to an expert": _symlinked_out,
    "merge --overwrite its tokenizer_source": _tokenizer_source_out,
    "mix --overwrite a zoo member glue built": _zoo_member_not_output,
    "recipe --overwrite the dir holding its --spec": _spec_inside_out,
    "mix --overwrite the dir holding its config": _config_inside_out,
    # -- remote code, no terminal (item 8)
    "merge: model config with auto_map": _merge_remote("model"),
    "merge: unknown model_type": _merge_remote("model_type"),
    "merge: tokenizer_source needs its own code": _merge_tokenizer_source_remote,
    "mix: expert config with auto_map": _mix_remote,
    "select: member tokenizer with auto_map": _select_remote,
    # -- glue mix validation (items 9-10)
    "mix: NaN in an expert's weights": _nan_expert,
    "mix: dense_layers true": lambda c: (["mix", c.mix(dense_layers=True), "--out", c.out()],
                                         ["dense_layers: True", "integer"]),
    "mix: one model under two expert names": lambda c: (
        ["mix", c.mix(experts=[{**c.experts()[0], "name": "a"}, {**c.experts()[0], "name": "b"}]), "--out", c.out()],
        ["'a' and 'b' are the same model"]),
    "mix: one model twice through a symlink": _symlink_twice,
    "mix: empty prompt": _prompt(""),
    "mix: whitespace prompt": _prompt("   "),
    "mix: prompts a string": lambda c: (["mix", c.centroids(experts=[{**c.experts()[0], "prompts": "12+35="},
                                                                      c.experts()[1]]), "--out", c.out()],
                                        ["prompts", "a list of strings"]),
    "mix: centroids temperature 0": lambda c: (["mix", c.centroids(router_params={"temperature": 0}), "--out",
                                                c.out()], ["router_params.temperature", "0", "> 0"]),
    "mix: centroids temperature -1": lambda c: (["mix", c.centroids(router_params={"temperature": -1}), "--out",
                                                 c.out()], ["router_params.temperature", "-1"]),
    "mix: centroids temperature text": lambda c: (["mix", c.centroids(router_params={"temperature": "hot"}),
                                                   "--out", c.out()], ["router_params.temperature", "'hot'"]),
    "mix: router_params a list": lambda c: (["mix", c.centroids(router_params=[1, 2]), "--out", c.out()],
                                            ["router_params", "a mapping"]),
    "mix: hidden router mode unknown": lambda c: (["mix", c.mix(router="hidden", router_params={"mode": "middle"}),
                                                   "--out", c.out()], ["router_params.mode", "'middle'", "last, avg"]),
    "mix: mlp hidden 0": lambda c: (["mix", c.mix(router="mlp", router_params={"hidden": 0}), "--out", c.out()],
                                    ["router_params.hidden", "integer >= 1"]),
    "mix: mlp steps 2.5": lambda c: (["mix", c.mix(router="mlp", router_params={"steps": 2.5}), "--out", c.out()],
                                     ["router_params.steps", "2.5"]),
    "mix: seed text": lambda c: (["mix", c.mix(seed="abc"), "--out", c.out()], ["seed: 'abc'"]),
    "mix: seed negative": lambda c: (["mix", c.mix(seed=-1), "--out", c.out()], ["seed: -1"]),
    "mix: seed true": lambda c: (["mix", c.mix(seed=True), "--out", c.out()], ["seed: True"]),
    "mix: seed huge": lambda c: (["mix", c.mix(seed=2**70), "--out", c.out()], ["seed:"]),
    "mix: top_k text": lambda c: (["mix", c.mix(top_k="2"), "--out", c.out()], ["top_k: '2'"]),
    "mix: top_k 1.5": lambda c: (["mix", c.mix(top_k=1.5), "--out", c.out()], ["top_k: 1.5"]),
    "mix: top_k true": lambda c: (["mix", c.mix(top_k=True), "--out", c.out()], ["top_k: True"]),
    "mix: shared a number": lambda c: (["mix", c.mix(shared=42), "--out", c.out()], ["shared: 42"]),
    "mix: shared a list": lambda c: (["mix", c.mix(shared=["a", "b"]), "--out", c.out()], ["shared: ['a', 'b']"]),
    "mix: shared merge needing a base": lambda c: (["mix", c.mix(shared={"method": "ties"}), "--out", c.out()],
                                                   ["shared", "ties", "base"]),
    "mix: shared merge with wrong weights": lambda c: (["mix", c.mix(shared={"method": "linear", "weights": [1]}),
                                                        "--out", c.out()], ["shared", "weights"]),
    "mix: shared merge method not a name": lambda c: (["mix", c.mix(shared={"method": 3}), "--out", c.out()],
                                                      ["shared.method", "3"]),
    "mix: expert model a number": lambda c: (["mix", c.mix(experts=[{"name": "a", "model": 42}]), "--out", c.out()],
                                             ["experts[0].model", "42"]),
    "mix: expert name empty": lambda c: (["mix", c.mix(experts=[{**c.experts()[0], "name": ""}, c.experts()[1]]),
                                          "--out", c.out()], ["experts[0].name", "non-empty"]),
    "mix: level a list": lambda c: (["mix", c.mix(level=["ffn_level"]), "--out", c.out()], ["level", "ffn_level"]),
    "mix: dtype a number": lambda c: (["mix", c.mix(dtype=16), "--out", c.out()], ["dtype: 16", "bfloat16"]),
    "mix: routing a number": lambda c: (["mix", c.mix(routing=1), "--out", c.out()], ["routing: 1"]),
    "mix (mergekit-moe): experts_per_token text": _moe_field(experts_per_token="two"),
    "mix (mergekit-moe): base_model a number": _moe_field(base_model=42),
    "mix (mergekit-moe): experts a mapping": _moe_field(experts={"a": 1}),
    "mix (mergekit-moe): gate_mode a list": lambda c: (["mix", c.moe(gate_mode=["hidden"]), "--out", c.out()],
                                                       ["gate_mode"]),
    # -- glue recipe --spec validated before any work (item 11)
    "recipe: router_params temperature 0": lambda c: (c.recipe(mixture={"router": "centroids", "router_params": {
        "temperature": 0}}), ["mixture.router_params.temperature", "> 0"]),
    "recipe: router_params mode unknown": lambda c: (c.recipe(mixture={"router": "hidden", "router_params": {
        "mode": "middle"}}), ["mixture.router_params.mode", "'middle'"]),
    "recipe: router_params unknown to a search router": lambda c: (c.recipe(
        mixture={"router": "centroids", "router_params": {"temperature": 2.0}},
        search={"enabled": True, "routers": ["centroids", "hidden"]}), ["search router 'hidden'", "temperature"]),
    "recipe: dense_layers beyond the depth": lambda c: (c.recipe(mixture={"level": "model_level", "dense_layers": 2}),
                                                        ["mixture.dense_layers", "0..1"]),
    "recipe: top_k beyond the experts": lambda c: (c.recipe(mixture={"level": "model_level", "top_k": 3}),
                                                   ["mixture.top_k", "beyond the experts"]),
    "recipe: batch_size 0": lambda c: (c.recipe(eval={"batch_size": 0}), ["eval.batch_size", "0"]),
    "recipe: unknown linkage": lambda c: (c.recipe(cluster={"method": "agglomerative", "linkage": "median"}),
                                          ["cluster.linkage", "median", "average"]),
    "recipe: unknown linkage, greedy clustering": lambda c: (c.recipe(cluster={"linkage": "median"}),
                                                             ["cluster.linkage", "median", "average"]),
    "recipe: routing a number": lambda c: (c.recipe(mixture={"routing": 3}), ["mixture.routing", "3"]),
    "recipe: merge param of the wrong type": lambda c: (c.recipe(merge={"params": {"normalize": "yes"}}),
                                                        ["merge.params.normalize", "'yes'"]),
    "recipe: delta_from not in the zoo": lambda c: (c.recipe(cluster={"delta_from": "ghost"}),
                                                    ["cluster.delta_from", "ghost", "tiny_base"]),
    "recipe: merge density 0": lambda c: (c.recipe(merge={"density": 0}), ["merge.density"]),
    "recipe: eval.tasks a string": lambda c: (c.recipe(eval={"tasks": "add"}), ["eval.tasks", "a list"]),
}


@pytest.mark.parametrize("kind", list(KINDS), ids=[k.replace(" ", "_") for k in KINDS])
def test_mix_recipe_bad_input_is_a_clear_error_and_leaves_nothing(kind, models, tmp_path, monkeypatch, capsys, rel):
    ctx = Ctx(tmp_path, models, monkeypatch)
    action, expected = KINDS[kind](ctx)
    rel.refused(kind, action, expected, tmp_path, monkeypatch, capsys)


def test_recipe_limit_keeps_the_native_evaluator_help_says(capsys):
    """Item 12: ``glue recipe --zoo tiny --out D --limit 8`` evaluates natively, as ``--help`` says; so does a
    ``--spec`` whose eval section names no evaluator. Checked on the spec the command builds (no run)."""
    from glue.cli import build_parser
    from glue.cli.recipe_cmd import spec_from_args

    p = build_parser("recipe")
    for argv in (["recipe", "--zoo", "tiny", "--out", "D", "--limit", "8"], ["recipe", "--zoo", "tiny", "--out", "D"]):
        assert spec_from_args(p.parse_args(argv)).eval.evaluator == "native"
    with pytest.raises(SystemExit):
        p.parse_args(["recipe", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "evaluator of the reported split (default native" in help_text
    from glue.recipe.spec import RecipeSpec

    assert RecipeSpec.from_dict({"zoo": "tiny", "eval": {"limit": 8, "split": "test"}}).eval.evaluator == "native"
    assert RecipeSpec.from_dict({"zoo": "tiny", "eval": {"evaluator": "lmeval"}}).eval.evaluator == "lmeval"


def test_the_output_guard_is_one_function_used_by_every_writing_verb(rel):
    """Every verb that writes a directory calls ``glue.safety.check_output`` (directly or through
    ``atomic_dir``) -- the one guard -- and no module compares output paths with inputs itself."""
    import re

    src = {p: (rel.repo / p).read_text() for p in (
        "glue/merge/executor.py", "glue/merge/config.py", "glue/mix/build.py", "glue/cli/mix_cmd.py",
        "glue/cli/recipe_cmd.py", "glue/select/pipeline.py", "glue/recipe/run.py")}
    for path, text in src.items():
        assert "check_output(" in text or "atomic_dir(" in text, path
    own = [p for p, t in src.items() if re.search(r"\.resolve\(\)\s*==\s*\w*out", t)]
    assert not own, f"ad-hoc output checks: {own}"


def test_overwrite_still_replaces_a_glue_output(models, tmp_path):
    """The guard refuses what it must and no more: a merge output that is none of the inputs is replaced."""
    from glue.cli import main

    cfg = tmp_path / "m.yaml"
    cfg.write_text(yaml.safe_dump({"method": "linear", "models": [str(models["tiny_ft_add"]), str(models["tiny_ft_cmp"])]}))
    out = tmp_path / "merged"
    assert main(["merge", str(cfg), "--out", str(out), "--no-progress"]) == 0
    first = (out / "model.safetensors").stat().st_ino
    assert json.loads((out / MARKER).read_text())["kind"] == "merge"
    assert main(["merge", str(cfg), "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert (out / "model.safetensors").stat().st_ino != first  # a new file: the old output was replaced


def test_recipe_never_runs_a_members_code(models, tmp_path, capsys):
    """A zoo member whose tokenizer needs its own code: ``glue recipe`` leaves it out with the reason
    (``glue.zoo.remote``) or refuses; its code never runs either way."""
    from glue.cli import main

    m = models["tiny_ft_cmp"]
    f = m / "tokenizer_config.json"
    f.write_text(json.dumps({**json.loads(f.read_text()), "tokenizer_class": "Evil",
                             "auto_map": {"AutoTokenizer": ["evil.Evil", None]}}))
    marker = tmp_path / "PWNED"
    (m / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    z = tmp_path / "z.yaml"
    z.write_text(yaml.safe_dump({"name": "z", "tasks": ["add", "cmp"], "members": [
        {"name": n, "source": str(models[n])} for n in ("tiny_ft_add", "tiny_ft_cmp", "tiny_base")]}))
    out = tmp_path / "out"
    rc = main(["recipe", "--zoo", str(z), "--out", str(out), "--no-search", "--limit", "1", "--quiet",
               "--format", "json"])
    text = capsys.readouterr()
    assert not marker.exists()
    if rc == 0:
        left = json.loads(text.out)["left_out"]
        assert "needs its own Python code" in left["tiny_ft_cmp"], left
    else:
        assert rc == 2 and "needs its own Python code" in text.err and not out.exists()
