"""``glue.bench.scores.ScoreCache``: the merge cases' search scores, shared through small JSON files; a
rewritten model directory is scored again, an in-memory cache (outside git) keeps nothing on disk."""

from __future__ import annotations

import os

import pytest

from glue.bench.scores import ScoreCache


def _model(d):
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"x" * 10)
    return str(d)


def test_a_score_is_shared_through_the_files(tmp_path):
    m = _model(tmp_path / "m")
    key = ((m,), "search", "native", None)
    a = ScoreCache(tmp_path / "cache")
    assert key not in a and (a.hits, a.misses) == (0, 1)
    a[key] = 0.5
    b = ScoreCache(tmp_path / "cache")  # another worker
    assert key in b and b[key] == 0.5 and b.hits == 1


def test_a_rewritten_model_is_scored_again(tmp_path):
    m = _model(tmp_path / "m")
    key = ((m,), "search")
    ScoreCache(tmp_path / "cache")[key] = 0.5
    w = tmp_path / "m" / "model.safetensors"
    w.write_bytes(b"y" * 11)
    os.utime(w, ns=(1, 1))
    assert key not in ScoreCache(tmp_path / "cache")


def test_without_a_root_the_cache_is_this_session_only(tmp_path):
    c = ScoreCache(None)
    assert "k" not in c
    with pytest.raises(KeyError):
        c["k"]
    c["k"] = 1
    assert "k" in c and c["k"] == 1.0
    assert not any(tmp_path.iterdir())
