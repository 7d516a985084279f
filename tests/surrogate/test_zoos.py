"""Re-seeded surrogate zoos (``NAME-seedN``)."""

import pytest

from glue.errors import ConfigError, UnknownNameError
from glue.surrogate import recipes as R
from glue.surrogate.recipes import SEED_STRIDE
from glue.zoo import get_zoo


def test_a_seeded_zoo_has_the_same_members_built_from_reseeded_recipes():
    z, s = get_zoo("surrogate16"), get_zoo("surrogate16-seed2")
    assert s.name == "surrogate16-seed2" and s.tasks == z.tasks and s.extra == z.extra
    assert [(m.name, m.family, m.role, m.architecture) for m in s.all_models()] == \
        [(m.name, m.family, m.role, m.architecture) for m in z.all_models()]
    assert s.member("d_code").source == "surrogate:d_code@s2"
    for m, n in zip(z.all_models(), s.all_models()):
        a, b = R.RECIPES.get(m.source[10:]), R.RECIPES.get(n.source[10:])
        assert b.seed == a.seed + 2 * SEED_STRIDE and (b.mix, b.steps, b.lr, b.arch) == (a.mix, a.steps, a.lr, a.arch)
        assert R.key(b.name) != R.key(a.name)
    # the whole lineage is re-seeded: the drifted members descend from drift0@s2, from base@s2
    assert R.RECIPES.get("d_code@s2").parent == "drift0@s2" and R.RECIPES.get("drift0@s2").parent == "base@s2"
    assert get_zoo("surrogate16-seed2") is s
    assert get_zoo("surrogate16-seed1").member("ft_add").source == "surrogate:ft_add@s1"
    assert R.key("ft_add@s1") != R.key("ft_add@s2")


def test_bad_seeded_names_are_clear_errors():
    with pytest.raises(ConfigError, match=r"zoo seed must be >= 1 \(seed 0 is 'tiny' itself\)"):
        get_zoo("tiny-seed0")
    with pytest.raises(ConfigError, match="'which2' is a real zoo"):
        get_zoo("which2-seed1")
    with pytest.raises(UnknownNameError, match="unknown zoo 'nozoo-seed1'"):
        get_zoo("nozoo-seed1")
