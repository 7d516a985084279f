"""The benchmarks' datasets (``glue.eval.datasets``): which ones a zoo's tasks need, the offline check, the
one error without hub access (each missing dataset with the command that fetches it), the fetch with its
verification (a fake loader writes the cache entries; never the network), and ``glue zoo build``."""

from __future__ import annotations

import pytest

from glue.errors import ConfigError
from glue.eval import datasets as D


@pytest.fixture
def cache(tmp_path, monkeypatch):
    c = tmp_path / "hf_datasets"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(c))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    return c


def _fake_loader(calls):
    def load(ds, cache):
        calls.append((ds.repo, ds.config))
        D.write_offline_dataset(cache, ds.repo, ds.config, {"train": [{"q": "a"}], "test": [{"q": "b"}]})
    return load


def test_a_zoos_tasks_need_these_datasets():
    got = D.task_datasets(["arc_challenge", "winogrande", "mmlu", "gsm8k", "add"])
    assert len(got) == 60 and len(D.mmlu_subjects()) == 57  # local tasks (add) need none
    assert got[0] == D.Dataset("arc_challenge", "allenai/ai2_arc", "ARC-Challenge")
    assert D.Dataset("mmlu", "cais/mmlu", "abstract_algebra") in got


def test_without_downloads_one_error_lists_each_missing_dataset_and_its_fetch_command(cache):
    with pytest.raises(ConfigError) as e:
        D.fetch_datasets("which2", ["arc_challenge", "gsm8k", "mmlu"], download=False)
    msg = str(e.value)
    assert "59 dataset(s)" in msg and "downloads are off" in msg and str(cache) in msg
    assert f"HF_DATASETS_CACHE={cache} python -c \"import datasets; datasets.load_dataset('openai/gsm8k', 'main')\"" in msg
    assert "cais/mmlu 57 configs (task mmlu)" in msg and "'abstract_algebra anatomy" in msg


def test_hf_hub_offline_is_the_no_hub_error(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set"):
        D.fetch_datasets("z", ["gsm8k"], load=_fake_loader(calls))
    assert calls == []


def test_fetch_loads_the_missing_ones_verifies_them_then_nothing(cache):
    calls = []
    D.write_offline_dataset(cache, "allenai/ai2_arc", "ARC-Challenge", {"test": [{"q": "x"}]})
    got = D.fetch_datasets("z", ["arc_challenge", "gsm8k"], load=_fake_loader(calls), progress=False, log=lambda m: None)
    assert calls == [("openai/gsm8k", "main")] and len(got) == 2  # ARC was there already
    assert [w for _, w in D.dataset_status(["arc_challenge", "gsm8k"])] == [None, None]
    calls.clear()
    D.fetch_datasets("z", ["arc_challenge", "gsm8k"], load=_fake_loader(calls), progress=False, log=lambda m: None)
    assert calls == []


def test_a_fetch_that_leaves_no_usable_data_fails_verification(cache):
    with pytest.raises(ConfigError, match="failed verification"):
        D.fetch_datasets("z", ["gsm8k"], load=lambda ds, c: None, progress=False, log=lambda m: None)


def test_an_unreachable_hub_lists_what_is_still_missing(cache):
    def down(ds, c):
        raise ConnectionError("no network")

    with pytest.raises(ConfigError, match="ConnectionError: no network") as e:
        D.fetch_datasets("z", ["arc_challenge", "gsm8k"], load=down, progress=False, log=lambda m: None)
    assert "allenai/ai2_arc" in str(e.value) and "openai/gsm8k" in str(e.value)


def test_a_written_cache_entry_is_what_load_dataset_reads_offline(cache, monkeypatch):
    import datasets
    import datasets.config

    D.write_offline_dataset(cache, "openai/gsm8k", "main", {"train": [{"question": "q", "answer": "#### 1"}]})
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    ds = datasets.load_dataset("openai/gsm8k", "main", cache_dir=str(cache))
    assert ds["train"][0]["question"] == "q"


def test_cli_zoo_build_offline_with_members_on_disk_names_the_missing_datasets(cache, tmp_path, make_llama, capsys,
                                                                              monkeypatch):
    import shutil

    from glue.cli import main
    from glue.zoo import fetch as F

    root = tmp_path / "models"
    monkeypatch.setenv("GLUE_MODEL_ROOT", str(root))
    monkeypatch.setattr(F, "hf_cache_dir", lambda repo: None)
    for i, repo in enumerate(["org/base", "org/ft"]):
        shutil.copytree(make_llama(f"m{i}", seed=i), root / repo)
    (tmp_path / "z.yaml").write_text("name: z\ntasks: [gsm8k]\nbase: {name: b, source: org/base}\n"
                                     "members: [{name: f, source: org/ft}]\n")
    assert main(["zoo", "build", str(tmp_path / "z.yaml"), "--offline"]) == 2
    err = capsys.readouterr().err
    assert "1 dataset(s)" in err and "openai/gsm8k main (task gsm8k)" in err and "fetch: HF_DATASETS_CACHE=" in err
    D.write_offline_dataset(cache, "openai/gsm8k", "main", {"train": [{"q": "a"}]})
    assert main(["zoo", "build", str(tmp_path / "z.yaml"), "--offline"]) == 0
    assert "2 models and 1 datasets ready" in capsys.readouterr().out
