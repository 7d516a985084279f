"""Merge configs: glue's YAML and mergekit's format, validated once with errors naming file and field."""

import pytest
import torch
import yaml

from glue.errors import ConfigError
from glue.merge.config import load_config, parse_config


def _write(tmp_path, data, name="merge.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


@pytest.fixture
def dirs(family):
    base, fts = family
    return base, fts, base.parent  # the fixtures live side by side in tmp_path


def test_glue_format_with_relative_paths_and_roundtrip(dirs):
    base, fts, root = dirs
    p = _write(root, {"method": "ties", "base": "base", "models": ["ft0", {"model": "ft1", "weight": 0.7, "density": 0.5},
                      {"model": str(fts[2]), "density": 0.3}], "params": {"lambda": 0.9}, "dtype": "bfloat16"})
    cfg = load_config(p)
    assert cfg.format == "glue" and cfg.method == "ties" and cfg.base.path == str(base)
    assert [m.name for m in cfg.models] == ["ft0", "ft1", "ft2"] and cfg.models[0].path == str(fts[0])
    s = cfg.spec
    assert s.weights == [1.0, 0.7, 1.0] and s.densities == [1.0, 0.5, 0.3] and s.params == {"lambda": 0.9}
    assert s.seed is None  # not a randomized method
    again = parse_config(cfg.to_dict(), source="again")
    assert again.spec == s and again.base == cfg.base and again.dtype == "bfloat16"


def test_mergekit_format_keeps_mergekit_meaning(dirs):
    base, fts, root = dirs
    cfg = load_config(_write(root, {
        "merge_method": "dare_ties", "base_model": str(base),
        "models": [{"model": str(base)},  # mergekit lists the base too; it is not a task vector
                   {"model": str(fts[0]), "parameters": {"weight": 0.6, "density": 0.5}},
                   {"model": str(fts[1]), "parameters": {"weight": 0.4, "density": 0.7}}],
        "parameters": {"int8_mask": True, "normalize": True}, "dtype": "float32", "out_dtype": "bfloat16",
        "tokenizer_source": "base"}))
    assert cfg.format == "mergekit" and [m.name for m in cfg.models] == ["ft0", "ft1"]
    assert cfg.spec.params == {"normalize": True, "rescale": "l1"}  # mergekit's default rescale = L1 norm
    assert cfg.spec.seed == 0 and cfg.dtype == "bfloat16" and cfg.tokenizer == "base"
    assert load_config(_write(root, {"merge_method": "dare_linear", "base_model": str(base), "models": [
        {"model": str(fts[0])}], "parameters": {"rescale": False}})).spec.params["rescale"] == "none"
    ties = load_config(_write(root, {"merge_method": "ties", "base_model": str(base), "models": [
        {"model": str(fts[0]), "parameters": {"density": 0.5}}], "parameters": {"weight": 0.3}}))
    assert ties.spec.weights == [0.3] and ties.spec.params == {"rescale": "none"}
    slerp = load_config(_write(root, {"merge_method": "slerp", "base_model": str(fts[1]), "models": [
        {"model": str(fts[0])}, {"model": str(fts[1])}], "parameters": {"t": 0.3}}))
    assert [m.name for m in slerp.models] == ["ft1", "ft0"] and slerp.base is None  # t = 0 is the base
    bc = load_config(_write(root, {"merge_method": "breadcrumbs", "base_model": str(base), "models": [
        {"model": str(f), "parameters": {"density": 0.8, "gamma": 0.02}} for f in fts]}))
    assert bc.spec.params == {"gamma": 0.02, "rescale": "none"}


def test_mergekit_and_glue_configs_give_the_same_merge(dirs, read_sd, tmp_path):
    base, fts, root = dirs
    mk = load_config(_write(root, {"merge_method": "ties", "base_model": str(base), "models": [
        {"model": str(f), "parameters": {"weight": w, "density": 0.5}} for f, w in zip(fts, (1.0, 0.5, 0.25))],
        "parameters": {"lambda": 0.8}}, "mk.yaml"))
    gl = load_config(_write(root, {"method": "ties", "base": str(base), "models": [
        {"model": str(f), "weight": w, "density": 0.5} for f, w in zip(fts, (1.0, 0.5, 0.25))],
        "params": {"lambda": 0.8}}, "gl.yaml"))
    a, b = read_sd(mk.run(tmp_path / "a").out), read_sd(gl.run(tmp_path / "b").out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the output records a glue config that reproduces it
    again = load_config(tmp_path / "a" / "glue_merge.yaml")
    c = read_sd(again.run(tmp_path / "c").out)
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_zoo_members_by_name(tiny_dirs, tmp_path):
    from glue.zoo import member_dir

    path = _write(tmp_path, {"zoo": "tiny", "method": "task_arithmetic", "base": "tiny_base",
                             "models": ["tiny_ft_add", {"model": "tiny_ft_cmp", "weight": 0.5}]})
    with pytest.raises(ConfigError, match="need a member resolver"):
        load_config(path)  # the merge package knows directories, not zoos
    cfg = load_config(path, members=member_dir)
    assert cfg.models[0].zoo == "tiny" and cfg.models[0].resolve() == tiny_dirs["tiny_ft_add"]
    assert cfg.base.resolve() == tiny_dirs["tiny_base"]


@pytest.mark.parametrize("data,match", [
    ({"method": "tie", "models": ["ft0"]}, r"method: unknown merge method 'tie'. Did you mean 'ties'\?.*Valid: .*linear"),
    ({"method": "ties", "base": "base", "models": ["ft0", {"model": "ft1", "density": 1.5}]},
     r"models\[1\].density = 1.5 \(model 'ft1'\) must be in \(0, 1\]"),
    ({"method": "slerp", "models": ["ft0", "ft1", "ft2"]}, r"slerp merges exactly 2 models, got 3"),
    ({"method": "linear", "models": [{"model": "ft0", "weight": 1}, {"model": "ft1", "weight": -1}]},
     r"linear with normalize: the weights \[1.0, -1.0\] sum to zero"),
    ({"method": "ties", "models": ["ft0"]}, r"ties needs a base model"),
    ({"method": "linear", "models": [{"model": "ft0", "density": 0.5}]}, r"linear takes no per-model 'density'"),
    ({"method": "linear", "models": ["nope"]}, r"models\[0\]: model directory 'nope' does not exist"),
    ({"method": "linear", "models": ["ft0"], "wieghts": [1]}, r"unknown field 'wieghts'; allowed: base, chat_template, compute_dtype"),
    ({"method": "ties", "base": "base", "models": ["ft0"], "params": {"lamda": 2}},
     r"ties has no parameter 'lamda'; its parameters: lambda, normalize, rescale"),
    ({"method": "linear", "models": ["ft0"], "dtype": "int8"}, r"dtype 'int8' is not one of float32, bfloat16"),
    ({"method": "linear", "models": ["ft0"], "vocab_policy": "pad"}, r"vocab_policy 'pad' is not one of error, trunc"),
    ({"merge_method": "ram", "slices": [], "modules": {}}, r"3 problems:\n  - 'modules': 'modules' \(per-module merges"
                                                          r".*\n  - merge_method: glue does not read mergekit's 'ram'. "
                                                          r"Supported from mergekit configs: linear, task_arithmetic.*\n"
                                                          r"  - slices must be a non-empty list"),
    ({"merge_method": "dare-ties", "models": [{"model": "ft0"}]}, r"'dare-ties'. Did you mean 'dare_ties'"),
    ({"merge_method": "linear", "models": [{"model": "ft0", "parameters": {"weight": [0, "a"]}}]},
     r"models\[0\].weight = \[0, 'a'\]: must be a number \(or a gradient / filtered numbers\)"),
    ({"merge_method": "linear", "models": [{"model": "ft0", "parameters": {"weight": [{"filtre": "mlp"}]}}]},
     r"models\[0\].weight\[0\] must be a mapping with 'value' and an optional 'filter'"),
    ({"merge_method": "slerp", "base_model": "ft0", "models": [{"model": "ft0"}, {"model": "ft1"}],
      "parameters": {"t": [0, 1.5]}}, r"slerp parameter 't' = 1.5: must be in \[0, 1\]"),
    ({"merge_method": "linear", "base_model": "ft0", "models": [{"model": "ft1", "parameters": {"weight": 1}}]},
     r"base_model: mergekit merges 'ft0' as one more linear input .* needs its weight"),
    ({"merge_method": "linear", "models": [{"model": "ft0+lora"}]},
     r"'ft0\+lora' is a model\+LoRA reference, but its LoRA adapter directory 'lora' does not exist"),
    ({"merge_method": "linear", "models": [{"model": "ft0+ft1"}]}, r"'ft1' \(after '\+'\) is not a LoRA adapter"),
    ({"merge_method": "linear", "models": [{"model": "ft0"}], "chat_template": "{{ x }}"},
     r"chat_template is written into a tokenizer built by the merge: give tokenizer_source"),
    ({"merge_method": "linear", "models": [{"model": "ft0"}], "tokenizer": {"source": "union", "tokens": {"a": {}}}},
     r"tokenizer.tokens \(per-token embedding sources\) is not supported by glue yet$"),
    ({"merge_method": "slerp", "base_model": "base", "slices": [{"sources": [{"model": "ft0", "layer_range": [0, 2]},
                                                                            {"model": "ft1", "layer_range": [0, 2]}]}]},
     r"slices\[0\]: slerp needs base_model base among the slice's sources"),
    ({"merge_method": "linear", "slices": [{"sources": [{"model": "ft0", "layer_range": [0]}]}]},
     r"slices\[0\].sources\[0\].layer_range must be \[start, end\]"),
    ({"merge_method": "slerp", "base_model": "ft0", "models": [{"model": "ft0"}]}, r"slerp merges exactly 2 models, got 1"),
    ({"merge_method": "ties", "base_model": "base", "models": [{"model": "ft0", "parameters": {"density": 0}}]},
     r"models\[0\].parameters.density = 0.0 \(model 'ft0'\) must be in \(0, 1\]"),
    ("- just a list", r"a merge config must be a mapping"),
])
def test_errors_name_file_field_and_allowed_values(dirs, data, match):
    _, _, root = dirs
    p = _write(root, data)
    with pytest.raises(ConfigError, match=match) as e:
        load_config(p)
    assert str(e.value).startswith(str(p))


def test_overrides_are_validated(dirs):
    _, _, root = dirs
    cfg = load_config(_write(root, {"method": "dare_linear", "base": "base", "models": ["ft0"], "seed": 4}))
    assert cfg.spec.seed == 4 and cfg.with_overrides(seed=9, dtype=None).spec.seed == 9
    with pytest.raises(ConfigError, match="vocab_policy 'x'"):
        cfg.with_overrides(vocab_policy="x")
    with pytest.raises(ConfigError, match="merge config .* does not exist"):
        load_config(root / "missing.yaml")
