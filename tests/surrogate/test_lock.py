"""Weight digests, zoo fingerprints and results/ZOO/zoo.lock."""

import hashlib
import json

import pytest

from glue.errors import ConfigError
from glue.surrogate import build
from glue.surrogate import lock as L
from glue.surrogate import recipes as R
from glue.zoo import get_zoo


def test_a_build_records_the_sha256_of_its_weights_and_its_kernels(monkeypatch, tmp_path):
    monkeypatch.setenv("GLUE_CACHE", str(tmp_path))
    build.build_models(["tiny_base"], workers=1, progress=False)
    d = build.model_path("tiny_base")
    info = json.loads((d / "glue_recipe.json").read_text())
    assert info["weights_sha256"] == hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
    assert info["kernels"]["preset"] == "avx2" and "pinned" in info["kernels"]
    assert L.model_digest("tiny_base") == info["weights_sha256"]


def test_fingerprint_is_order_free_and_changes_with_any_digest():
    a = {"m1-k": "aa", "m2-k": "bb"}
    assert L.fingerprint(a) == L.fingerprint(dict(reversed(list(a.items()))))
    assert L.fingerprint(a) != L.fingerprint({**a, "m2-k": "bc"})
    assert len(L.fingerprint(a)) == 16


def test_zoo_lock_lists_every_model_by_recipe_and_key(tiny_zoo):
    lock = L.zoo_lock(tiny_zoo)
    assert list(lock) == [f"{r}-{R.key(r)}" for r in L.recipes_of(tiny_zoo)]
    d = build.model_path("tiny_ft_add")
    assert lock[f"tiny_ft_add-{R.key('tiny_ft_add')}"] == hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()
    assert L.zoo_fingerprint(tiny_zoo) == L.fingerprint(lock)


def test_a_real_zoo_has_no_fingerprint():
    assert L.zoo_fingerprint(get_zoo("which2")) is None
    with pytest.raises(ConfigError, match="real zoo"):
        L.zoo_lock(get_zoo("which2"))


def test_check_lock_says_same_differs_or_missing(tiny_zoo, tmp_path):
    none = L.check_lock(tiny_zoo, tmp_path)
    assert none.locked is None and not none.same and "no " in none.message(tmp_path)
    path = L.write_lock(tiny_zoo, tmp_path)
    assert path == tmp_path / "tiny" / "zoo.lock"
    same = L.check_lock(tiny_zoo, tmp_path)
    assert same.same and not same.differ and "bitwise-identical" in same.message(tmp_path)
    doc = json.loads(path.read_text())
    key = f"tiny_harm-{R.key('tiny_harm')}"
    doc["models"][key] = "0" * 64  # another machine's weights for one model
    path.write_text(json.dumps(doc))
    other = L.check_lock(tiny_zoo, tmp_path)
    assert not other.same and other.differ == [key]
    assert "DIFFERS" in other.message(tmp_path) and key in other.message(tmp_path)


def test_a_damaged_lock_is_a_clear_error(tiny_zoo, tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "zoo.lock").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"zoo.lock: not a zoo lock.*--write-lock"):
        L.check_lock(tiny_zoo, tmp_path)


def test_an_unbuilt_zoo_names_the_missing_models(monkeypatch, tmp_path):
    monkeypatch.setenv("GLUE_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match=r"6 model\(s\) not built.*glue zoo build tiny"):
        L.zoo_lock(get_zoo("tiny"))
