from glue.io import Checkpoint


def test_tiny_zoo_builds_and_loads(tiny_dirs):
    assert set(tiny_dirs) >= {"tiny_base", "tiny_ft_add", "tiny_other"}
    with Checkpoint(tiny_dirs["tiny_other"]) as ck:
        assert ck.architecture == "Qwen2ForCausalLM"


def test_make_llama_child_is_close_to_parent(make_llama):
    import torch

    p = make_llama("p", seed=0)
    c = make_llama("c", seed=1, parent=p, noise=1e-3)
    with Checkpoint(p) as a, Checkpoint(c) as b:
        k = "model.layers.0.mlp.up_proj.weight"
        d = (a.read(k) - b.read(k)).abs().max().item()
        assert 0 < d < 1e-2 and torch.isfinite(a.read(k)).all()
