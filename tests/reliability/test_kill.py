"""SIGKILL at chosen points (``GLUE_KILL_AT``, see ``glue.safety.kill_point``) of a zoo build, a merge, a
selection, a clustering and a bench, then the rerun checked: nothing partial at the destination,
stale temporaries cleaned, records exactly once, ``results.csv`` current. And two benches at once on
one results folder measure each case once.

Each glue run is a real subprocess (``python -m glue`` / ``python -m pytest benchmarks``) on the tiny zoo.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import signal
from pathlib import Path

import yaml

from glue.cli import main
from glue.paths import cache_dir
from glue.safety import MARKER

KILLED = -signal.SIGKILL
BENCH = ["-m", "pytest", "benchmarks", "--models", "tiny", "--evaluator", "native", "--limit", "2", "-k",
         "single and (tiny_base or tiny_ft_add or tiny_harm)", "-p", "no:cacheprovider", "-q", "--benchmark-disable"]
N_SINGLE = 3  # three of tiny's single-model cases


def _linear(tmp: Path, dirs) -> str:
    p = tmp / "merge.yaml"
    p.write_text(yaml.safe_dump({"method": "linear", "models": [str(dirs["tiny_ft_add"]), str(dirs["tiny_ft_cmp"])]}))
    return str(p)


def test_merge_killed_before_rename_leaves_nothing_and_reruns(tiny_dirs, tmp_path, rel):
    cfg, out = _linear(tmp_path, tiny_dirs), tmp_path / "out"
    p = rel.run(["merge", cfg, "--out", str(out), "--no-progress"], rel.glue_env(tmp_path, GLUE_KILL_AT="atomic_dir.written"))
    assert p.returncode == KILLED, p.stderr
    assert not out.exists() and len(rel.temporaries(tmp_path)) == 1  # a complete temporary, never the destination
    assert main(["merge", cfg, "--out", str(out), "--no-progress"]) == 0  # the rerun (in-process: faster)
    assert (out / MARKER).is_file() and (out / "model.safetensors").is_file()
    assert rel.temporaries(tmp_path) == []  # the dead process's temporary is gone
    # --overwrite replaces glue's own output; killed while replacing, the old output stays whole
    before = rel.snapshot(out)
    p = rel.run(["merge", cfg, "--out", str(out), "--overwrite", "--no-progress"],
                rel.glue_env(tmp_path, GLUE_KILL_AT="atomic_dir.written"))
    assert p.returncode == KILLED and rel.snapshot(out) == before


def test_select_killed_mid_write_then_rerun(tiny_zoo, tmp_path, rel):
    out = tmp_path / "sel"
    args = ["select", "--zoo", "tiny", "--strategy", "all", "--method", "linear", "--out", str(out),
            "--members", "tiny_ft_add", "tiny_ft_cmp", "--limit", "1", "--quiet"]
    p = rel.run(args, rel.glue_env(tmp_path, GLUE_KILL_AT="atomic_dir.written:2"))  # the outer directory, complete
    assert p.returncode == KILLED, p.stderr
    assert not out.exists() and rel.temporaries(tmp_path)
    assert main(args) == 0
    assert json.loads((out / "selection.json").read_text())["zoo"] == "tiny" and (out / MARKER).is_file()
    assert rel.temporaries(tmp_path) == []


def test_cluster_killed_writes_the_whole_set_or_nothing(tiny_zoo, tmp_path, rel):
    from glue.safety import recover_sets

    d = tmp_path / "results" / "tiny" / "cluster"
    env = rel.glue_env(tmp_path)
    assert main(["cluster", "--zoo", "tiny", "--threshold", "0.5"]) == 0
    old = rel.snapshot(d)
    # killed before the commit point: the old set, untouched
    p = rel.run(["cluster", "--zoo", "tiny", "--threshold", "0.99"], {**env, "GLUE_KILL_AT": "atomic_files.written"})
    assert p.returncode == KILLED
    now = rel.snapshot(d)
    assert {k: v for k, v in now.items() if not k.startswith(".")} == old  # the old set, every byte
    assert all(".tmp-" in k.split("/")[0] for k in now if k.startswith("."))  # plus a temporary, removed next run
    # killed after the first file moved: a mix on disk until the next writer rolls the set forward
    p = rel.run(["cluster", "--zoo", "tiny", "--threshold", "0.99"], {**env, "GLUE_KILL_AT": "atomic_files.moving"})
    assert p.returncode == KILLED
    assert recover_sets(d)  # what the next `glue cluster` does first
    assert json.loads((d / "clusters.json").read_text())["threshold"] == 0.99
    assert not [n for n in rel.snapshot(d) if n.startswith(".")]  # no temporary, no commit directory left
    assert sorted(n for n in rel.snapshot(d)) == sorted(old)  # the same six files, all from the 0.99 run
    assert all(rel.snapshot(d)[n][1] != old[n][1] for n in old)


def test_zoo_build_killed_then_rerun(tiny_dirs, tmp_path, rel, monkeypatch, capsys):
    from glue.surrogate.build import model_path

    cache = tmp_path / "cache"
    src = cache_dir() / "surrogate"
    (cache / "surrogate").mkdir(parents=True)
    harm = model_path("tiny_harm").name
    for d in src.iterdir():  # the tiny zoo, minus one cheap member
        if d.name.startswith("tiny_") and d.is_dir() and d.name != harm and not d.name.startswith("."):
            shutil.copytree(d, cache / "surrogate" / d.name)
    env = rel.glue_env(tmp_path, GLUE_CACHE=str(cache))
    p = rel.run(["zoo", "build", "tiny", "--workers", "1"], {**env, "GLUE_KILL_AT": "atomic_dir.written"})
    assert p.returncode == KILLED, p.stderr
    assert not (cache / "surrogate" / harm).exists() and len(rel.temporaries(cache)) == 1
    monkeypatch.setenv("GLUE_CACHE", str(cache))
    assert main(["zoo", "build", "tiny", "--workers", "1"]) == 0
    assert "1 built, 5 cached" in capsys.readouterr().out and (cache / "surrogate" / harm / "glue_recipe.json").is_file()
    assert rel.temporaries(cache) == []


def _records(root: Path) -> list[dict]:
    return [json.loads(x) for f in sorted((root / "tiny" / "runs").glob("*.jsonl")) for x in f.read_text().splitlines()]


def _csv_rows(root: Path) -> int:
    return len((root / "tiny" / "results.csv").read_text().splitlines()) - 1


def test_bench_killed_between_append_and_results_csv_then_rerun(tiny_zoo, tmp_path, rel):
    root = tmp_path / "results"
    env = rel.glue_env(tmp_path)
    p = rel.run(BENCH, {**env, "GLUE_KILL_AT": "store.appended:2"})
    assert p.returncode == KILLED
    assert len(_records(root)) == 2 and _csv_rows(root) == 1  # results.csv is stale: one record behind
    p = rel.run(BENCH, {**env, "GLUE_KILL_AT": "recorder.measuring:1"})  # killed while measuring a case
    assert p.returncode == KILLED
    assert len(_records(root)) == 2 and _csv_rows(root) == 2  # the start of the run brought results.csv up to date
    p = rel.run(BENCH, env)
    assert p.returncode == 0, p.stdout[-2000:]
    cases = [r["case"] for r in _records(root)]
    assert len(cases) == N_SINGLE == len(set(cases)) and _csv_rows(root) == N_SINGLE  # each case exactly once
    assert rel.temporaries(root) == []
    for c in (root / "tiny" / ".claims").glob("*.claim"):  # a killed owner's claim file may remain: never held
        with open(c) as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_two_benches_at_once_measure_each_case_once(tiny_zoo, tmp_path, rel):
    """``python -m glue.bench.scripts.parallel --jobs 2`` (what ``make bench`` runs): two pytest processes, one
    results folder."""
    root = tmp_path / "results"
    p = rel.run(["-m", "glue.bench.scripts.parallel", "--jobs", "2", "--", *BENCH[3:], "-rs"],
                rel.glue_env(tmp_path))
    assert p.returncode == 0, p.stdout[-3000:]
    cases = [r["case"] for r in _records(root)]
    assert len(cases) == N_SINGLE == len(set(cases)), cases  # measured once in all
    assert _csv_rows(root) == N_SINGLE
    per_worker = [sum(int(m.group(1)) for m in re.finditer(rf"\[w{i}\] .*?(\d+) passed", p.stdout)) for i in (0, 1)]
    assert sum(per_worker) == N_SINGLE, p.stdout  # the other worker skipped what one claimed or recorded
    assert "2 workers finished" in p.stdout
