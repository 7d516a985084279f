import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from glue.errors import ConfigError
from glue.record.provenance import (SCHEMA_VERSION, Measurements, Record, canonical_json, case_family,
                                    collect_provenance, config_hash, git_state, make_record)

REPO = Path(__file__).resolve().parents[2]


def test_config_hash_is_sha256_of_canonical_json_whatever_the_key_order():
    a = {"method": "ties", "params": {"density": 0.5, "k": [1, 2]}, "limit": None}
    b = {"limit": None, "params": {"k": (1, 2), "density": 0.5}, "method": "ties"}
    assert canonical_json(a) == '{"limit":null,"method":"ties","params":{"density":0.5,"k":[1,2]}}'
    assert config_hash(a) == config_hash(b) == hashlib.sha256(canonical_json(a).encode()).hexdigest()
    assert config_hash(a) != config_hash({**a, "method": "dare"})


@pytest.mark.parametrize("bad, where", [({"a": {"b": [1, Path("x")]}}, "config.a.b[1]"),
                                        ({"t": float("nan")}, "config.t"), ({"s": {1, 2}}, "config.s"),
                                        ({"d": {3: "x"}}, "config.d")])
def test_non_json_config_values_are_rejected_naming_the_field(bad, where):
    with pytest.raises(ConfigError, match=f"^{where.replace('[', '.').replace(']', '.')}"):
        config_hash(bad)


def test_provenance_names_this_checkout_machine_and_libraries():
    import numpy

    p = collect_provenance()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert p.commit.split("+")[0] == head and p.short_commit == head[:7] and isinstance(p.dirty, bool)
    assert ("+" in p.commit) == p.dirty  # a dirty tree is keyed by the content of its change
    assert p.time.endswith("Z") and p.time[:2] == "20"
    assert set(p.machine) == {"hostname", "platform", "python", "cpu", "cores", "ram_gb", "gpu", "kernels"}
    assert p.machine["kernels"]["preset"] in ("avx2", "native")
    assert p.machine["cores"] >= 1 and p.machine["ram_gb"] > 0
    assert p.versions["numpy"] == numpy.__version__ and p.versions["torch"]


def test_dirty_flag_follows_the_tree_but_not_the_excluded_results_dir(tmp_path):
    def git(*a):
        subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f.py").write_text("x = 1\n")
    git("add", "f.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    commit, dirty = git_state(tmp_path, exclude=tmp_path / "results")
    assert len(commit) == 40 and dirty is False
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.jsonl").write_text("{}\n")
    assert git_state(tmp_path, exclude=tmp_path / "results") == (commit, False)
    (tmp_path / "f.py").write_text("x = 2\n")
    dirty_commit, dirty = git_state(tmp_path, exclude=tmp_path / "results")
    assert dirty and dirty_commit.startswith(commit + "+") and len(dirty_commit) == 40 + 13
    assert git_state(tmp_path, exclude=tmp_path / "results") == (dirty_commit, True)  # same change, same key
    (tmp_path / "f.py").write_text("x = 3\n")
    other = git_state(tmp_path, exclude=tmp_path / "results")[0]
    assert other.startswith(commit + "+") and other != dirty_commit  # another edit: another key
    (tmp_path / "new.py").write_text("y = 1\n")
    assert git_state(tmp_path, exclude=tmp_path / "results")[0] not in (dirty_commit, other)  # untracked files count
    (tmp_path / "results" / "r2.jsonl").write_text("{}\n")
    assert git_state(tmp_path, exclude=tmp_path / "results")[0] == git_state(tmp_path, exclude=tmp_path / "results")[0]
    assert git_state(tmp_path / "nowhere") == ("unknown", None)


def test_record_round_trips_through_one_json_line(provenance):
    m = Measurements({"add": 0.5, "mul": 0.25}, {"add": 4, "mul": 4}, 1.5, 2.0, {"k": 3, "nan": float("nan")})
    r = make_record("merge-ties-x", "tiny", {"method": "ties"}, m, provenance, wall_seconds=4.0,
                    memory={"peak_rss_mb": 10.0, "rss_delta_mb": 2.0, "peak_cuda_mb": None})
    line = r.to_json()
    assert "\n" not in line and r.average == 0.375 and r.family == "merge" and r.schema == SCHEMA_VERSION
    assert r.config_hash == config_hash({"method": "ties"})
    back = Record.from_dict(json.loads(line))
    assert back.extra == {"k": 3, "nan": None}
    assert back == Record.from_dict(r.to_dict() | {"extra": {"k": 3, "nan": None}})


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("case"), r"missing field\(s\) \['case'\]"),
    (lambda d: d.update(speed=1), r"unknown field\(s\) \['speed'\]"),
    (lambda d: d.update(schema=SCHEMA_VERSION + 1), "field 'schema' is 2"),
    (lambda d: d.update(scores=[0.5]), "field 'scores' must be a dict"),
    (lambda d: d["provenance"].pop("commit"), r"missing \['commit'\]"),
])
def test_from_dict_names_the_bad_field(provenance, change, message):
    d = make_record("single-a", "tiny", {}, Measurements({"add": 1.0}), provenance).to_dict()
    change(d)
    with pytest.raises(ValueError, match=message):
        Record.from_dict(d)


def test_measurements_coerce_eval_results_and_dicts():
    from glue.eval import EvalResult

    m = Measurements.coerce(EvalResult({"add": 0.5}, {"add": 8}, 2.0, "native", "test"))
    assert (m.scores, m.n, m.eval_seconds) == ({"add": 0.5}, {"add": 8}, 2.0)
    assert Measurements.coerce({"scores": {"a": 1.0}, "extra": {"x": 1}}).extra == {"x": 1}
    with pytest.raises(ConfigError, match=r"unknown measurement field\(s\) \['acc'\].*extra"):
        Measurements.coerce({"acc": 1.0})
    with pytest.raises(ConfigError, match="not float"):
        Measurements.coerce(0.5)


def test_case_family_is_the_part_before_the_first_dash():
    assert [case_family(c) for c in ("single-vicuna-7b-v1.5", "cluster-t0.95", "mix")] == ["single", "cluster", "mix"]


def test_record_package_imports_no_torch():
    code = ("import importlib, pkgutil, sys, glue.record as r\n"
            "for m in pkgutil.iter_modules(r.__path__): importlib.import_module(f'glue.record.{m.name}')\n"
            "import glue.record.provenance as p; p.collect_provenance()\n"
            "assert len(sys.modules) > 100 and 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr


def test_gpu_name_is_read_when_records_are_made_not_cached_before_torch(monkeypatch):
    """A record of a GPU run names the GPU even when provenance was first collected before torch
    was imported (the machine facts are cached, the GPU is not)."""
    import sys
    import types

    from glue.record.provenance import machine_info

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert machine_info()["gpu"] is None
    cuda = types.SimpleNamespace(is_available=lambda: True, device_count=lambda: 8,
                                 get_device_name=lambda i: "NVIDIA H200")
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert machine_info()["gpu"] == "8x NVIDIA H200"


def test_cuda_run_settings_without_cuda_are_refused_before_any_case(tmp_path):
    import pytest
    import torch

    from glue.errors import ConfigError
    from glue.eval import EvalSpec
    from glue.record.recorder import Recorder

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="no CUDA device"):
        Recorder("tiny", EvalSpec(device="cuda"), root=tmp_path)
