import pytest

from glue.errors import CheckpointError, ConfigError, UnknownNameError
from glue.zoo import get_zoo, load_zoo_yaml, resolve, zoo_names
from glue.zoo.spec import Member


def test_registered_zoos():
    names = zoo_names()
    assert {"tiny", "surrogate2", "surrogate16", "which2", "which4", "which4_domain", "which8", "which12",
            "which16"} <= set(names)


def test_real_zoos_nest_and_carry_hub_ids():
    chain = [get_zoo(n) for n in ("which2", "which4", "which8", "which12", "which16")]
    for small, big in zip(chain, chain[1:]):
        assert {m.name for m in small.members} <= {m.name for m in big.members}
    assert {m.name for m in get_zoo("which4_domain").members} <= {m.name for m in get_zoo("which8").members}
    w16 = get_zoo("which16")
    assert len(w16.members) == 16 and w16.base.source == "meta-llama/Llama-2-7b-hf"
    assert all("/" in m.source for m in w16.members)
    assert [m.name for m in w16.members if m.family == "codellama"] == ["MetaMath-Llemma-7B", "CodeLlama-7b-Instruct-hf",
                                                                       "Magicoder-S-CL-7B"]
    assert {m.architecture for m in w16.members} == {"LlamaForCausalLM", "CrystalCoderLMHeadModel"}


def test_unknown_zoo_and_member():
    with pytest.raises(UnknownNameError, match="unknown zoo 'wich16'.*Did you mean 'which16'"):
        get_zoo("wich16")
    with pytest.raises(UnknownNameError, match="Valid: .*tiny_base"):
        get_zoo("tiny").member("nope")


def test_zoo_yaml_with_local_directories_loads_and_evaluates(tmp_path, make_llama):
    from glue.eval import EvalSpec
    from glue.recipe.members import evaluate_member

    base = make_llama("base", seed=0)
    make_llama("a", seed=1, parent=base, noise=0.01)
    (tmp_path / "zoo.yaml").write_text(
        "name: local\ntasks: [cmp]\nbase: {name: base, source: base}\nmembers:\n  - {name: a, source: a, family: f}\n")
    z = load_zoo_yaml(tmp_path / "zoo.yaml")
    assert z.base.source == str(base) and resolve(z.member("a")) == tmp_path / "a"
    r = evaluate_member(z, "a", EvalSpec(split="search", evaluator="native", limit=5))
    assert r.n == {"cmp": 5}
    assert get_zoo(str(tmp_path / "zoo.yaml")).name == "local"


@pytest.mark.parametrize("text, msg", [
    ("[1, 2]", "top level must be a mapping"),
    ("name: x\nmembers: []\n", "'members' must be a non-empty list"),
    ("name: x\nmembers: [{name: a}]\n", r"members\[0\] must be a mapping with at least 'name' and 'source'"),
    ("name: x\nmembrs: []\n", r"unknown field\(s\) \['membrs'\]"),
    ("name: x\nmembers: [{name: a, source: /x, colour: red}]\n", r"members\[0\]: unknown field\(s\) \['colour'\]"),
    ("name: x\nmembers: [{name: a, source: /x}, {name: a, source: /y}]\n", "duplicate member names"),
    ("name: [\n", "invalid YAML"),
])
def test_bad_zoo_yaml_names_file_and_field(tmp_path, text, msg):
    p = tmp_path / "z.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=msg) as e:
        load_zoo_yaml(p)
    assert str(p) in str(e.value)


def test_resolution_of_hub_ids(tmp_path, monkeypatch, make_llama):
    d = make_llama("Llama-2-7b-chat-hf", seed=0)
    root = tmp_path / "root"
    (root / "meta-llama").mkdir(parents=True)
    d.rename(root / "meta-llama" / "Llama-2-7b-chat-hf")
    monkeypatch.setenv("GLUE_MODEL_ROOT", str(root))
    m = get_zoo("which2").member("Llama-2-7b-chat-hf")
    assert resolve(m) == root / "meta-llama" / "Llama-2-7b-chat-hf"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"'vicuna-7b-v1.5' \(lmsys/vicuna-7b-v1.5\): not found.*glue zoo build"):
        resolve(get_zoo("which2").member("vicuna-7b-v1.5"))
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve(Member("x", str(tmp_path / "missing"), "f"))
