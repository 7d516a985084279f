import torch

from glue.surrogate.skills import Item
from glue.surrogate.train import Arch, collate, train


def test_collate_masks_prompt_and_padding():
    ids, mask, labels = collate([Item("add:1+2=", "3"), Item("rev:a=", "a")])
    assert ids.shape == labels.shape == mask.shape == (2, 11)
    assert (labels[0, :9] == -100).all() and labels[0, 9] != -100 and labels[0, 10] != -100  # answer + eos
    assert mask[1].tolist() == [1] * 9 + [0, 0] and (labels[1, 9:] == -100).all() and (labels[1, 7:9] != -100).all()


def _tiny():
    return Arch(hidden=16, layers=1, heads=2).build(seed=0)


def test_training_is_deterministic_and_learns():
    a, b = _tiny(), _tiny()
    la = train(a, {"cmp": 1.0, "add": 1.0}, 30, 3e-3, seed=1, batch=16)
    lb = train(b, {"cmp": 1.0, "add": 1.0}, 30, 3e-3, seed=1, batch=16)
    assert la == lb
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert sum(la[-5:]) / 5 < sum(la[:5]) / 5


def test_seed_and_corruption_change_the_weights():
    a, b, c = _tiny(), _tiny(), _tiny()
    train(a, {"add": 1.0}, 5, 3e-3, seed=1, batch=8)
    train(b, {"add": 1.0}, 5, 3e-3, seed=2, batch=8)
    train(c, {"add": 1.0}, 5, 3e-3, seed=1, batch=8, corrupt=1.0)
    w = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(a.state_dict()[w], b.state_dict()[w]) and not torch.equal(a.state_dict()[w], c.state_dict()[w])


def test_other_architecture_is_qwen2():
    m = Arch(hidden=16, layers=1, heads=2, kind="qwen2").build(seed=0)
    assert type(m).__name__ == "Qwen2ForCausalLM"
