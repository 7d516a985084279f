"""Members that need their own Python code are left out of a real zoo's runs without the opt-in, each with
its reason (``glue.zoo.remote``)."""

from __future__ import annotations

import json

import pytest

from glue.errors import ConfigError
from glue.zoo import Member, Zoo, get_zoo
from glue.zoo.remote import remote_code_reason, runnable


def _auto_map(d):
    c = json.loads((d / "config.json").read_text())
    c["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    (d / "config.json").write_text(json.dumps(c))
    return d


@pytest.fixture
def zoo(make_llama):
    base, ft = make_llama("base"), make_llama("ft", seed=1)
    odd = _auto_map(make_llama("odd", seed=2))
    return Zoo("rz", "real", (Member("ft", str(ft), "llama2"), Member("odd", str(odd), "crystal")), ("add",),
               Member("base", str(base), "llama2", role="base"))


def test_a_member_with_auto_map_is_left_out_with_its_reason(zoo):
    view, left = runnable(zoo)
    assert [m.name for m in view.members] == ["ft"] and view.base == zoo.base
    assert list(left) == ["odd"] and "auto_map" in left["odd"] and "--trust-remote-code" in left["odd"]


def test_the_opt_in_keeps_every_member(zoo):
    assert runnable(zoo, trust_remote_code=True) == (zoo, {})


def test_a_member_not_on_disk_is_judged_by_its_declared_architecture():
    view, left = runnable(get_zoo("which16"))  # nothing on disk here
    assert list(left) == ["CrystalChat"] and "CrystalCoderLMHeadModel" in left["CrystalChat"]
    assert len(view.members) == 15 and "CrystalChat" not in [m.name for m in view.members]
    assert remote_code_reason(get_zoo("which16").member("vicuna-7b-v1.5")) is None


def test_surrogate_zoos_are_never_filtered():
    z = get_zoo("tiny")
    assert runnable(z) == (z, {})


def test_a_remote_code_base_is_an_error(zoo):
    import dataclasses

    bad = dataclasses.replace(zoo, base=Member("odd2", zoo.member("odd").source, "crystal", role="base"),
                              members=(zoo.member("ft"),))
    with pytest.raises(ConfigError, match="its base odd2 needs remote code"):
        runnable(bad)
