import pytest

from glue.errors import UnknownNameError
from glue.registry import Registry


def test_register_get_and_decorator():
    r: Registry[int] = Registry("thing")
    r.register("a", 1)

    @r.register("f")
    def f():
        return 2

    assert r.get("a") == 1 and r.get("f") is f
    assert r.names() == ["a", "f"] and "a" in r and len(r) == 2


def test_unknown_name_lists_valid_and_suggests():
    r: Registry[int] = Registry("merge method")
    r.register("linear", 1)
    r.register("ties", 2)
    with pytest.raises(UnknownNameError) as e:
        r.get("linaer")
    msg = str(e.value)
    assert "unknown merge method 'linaer'" in msg and "Did you mean 'linear'" in msg and "linear, ties" in msg
    assert isinstance(e.value, KeyError)


def test_duplicate_registration_fails():
    r: Registry[int] = Registry("x")
    r.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        r.register("a", 2)
