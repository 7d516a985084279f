import pytest

from glue.surrogate import zoos  # noqa: F401  (registers the recipes)
from glue.surrogate.recipes import RECIPES, Recipe, key, lineage
from glue.zoo import get_zoo


def test_lineage_puts_parents_first():
    order = lineage(["d_code", "ft_add"])
    assert order.index("base") < order.index("drift0") < order.index("d_code") and order[-1] == "ft_add"


def test_key_hashes_fields_and_parent_not_metadata():
    r = RECIPES.get("ft_add")
    assert len(key("ft_add")) == 12 and key("ft_add") != key("ft_cmp")
    assert Recipe("x", r.mix, r.steps, r.lr, r.seed, parent="base", note="other note") == \
        Recipe("x", r.mix, r.steps, r.lr, r.seed, parent="base")


def test_recipe_needs_parent_or_arch():
    with pytest.raises(ValueError, match="exactly one of parent or arch"):
        Recipe("bad", (("add", 1.0),), 1, 1e-3, 0)


def test_nested_zoos_and_planted_structure():
    sizes = [len(get_zoo(f"surrogate{n}").members) for n in (2, 4, 8, 12, 16)]
    assert sizes == [2, 4, 8, 12, 16]
    for small, big in [(2, 4), (4, 8), (8, 12), (12, 16)]:
        a = [m.name for m in get_zoo(f"surrogate{small}").members]
        assert a == [m.name for m in get_zoo(f"surrogate{big}").members][: len(a)]
    z = get_zoo("surrogate16")
    roles = [m.role for m in z.members]
    assert roles.count("harmful") >= 1 and roles.count("drifted") >= 3 and roles.count("other-arch") >= 1
    assert roles.count("finetune") >= 10
    assert {m.architecture for m in z.members if m.role == "other-arch"} != {z.base.architecture}
    fts = [RECIPES.get(m.source.split(":")[1]) for m in z.members if m.role == "finetune"]
    assert all(r.parent == z.base.name for r in fts)
    assert len({(r.mix, r.lr, r.seed) for r in fts}) == len(fts)  # different mixes, learning rates, seeds
