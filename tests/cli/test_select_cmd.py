"""`glue select`: runs a strategy on tiny, prints rounds/weights/test scores, writes DIR; bad input exits 2, writes nothing."""

import json

import pytest
import yaml

from glue.cli import main
from glue.cli.select_cmd import parse_params
from glue.errors import ConfigError
from glue.select import STRATEGIES


def test_select_prints_rounds_weights_and_test_scores(tiny_zoo, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["select", "--zoo", "tiny", "--strategy", "average", "--method", "ties", "--out", str(out),
                 "--limit", "2", "--density", "0.3"]) == 0
    cap = capsys.readouterr()
    text = cap.out
    assert "  #0 single tiny_ft_add: " in cap.err and "  #4 round 1 " in cap.err and cap.err.count("\n") == 7
    assert "zoo tiny · strategy average · method ties (density 0.3)" in text
    assert "left out tiny_other: architecture Qwen2ForCausalLM" in text
    assert "| round | candidate | single | c | score | best before | decision |" in text
    assert "| 0 |" in text and "| start |" in text and text.count("| keep |") + text.count("| drop |") == 3
    assert "| member | status | weight | density |" in text and "search score " in text and "7 evaluations" in text
    assert all(line.endswith("| 0.000 |  |") for line in text.splitlines() if "| dropped |" in line)
    rec = json.loads((out / "selection.json").read_text())
    assert rec["strategy"] == "average" and rec["zoo"] == "tiny" and rec["limit"] == 2
    assert f"wrote {out}: " in text and f"| merged | {rec['test']['scores']['mul']:.3f} |" in text
    assert set(rec["kept"]) | set(rec["dropped"]) == {"tiny_ft_add", "tiny_ft_cmp", "tiny_harm", "tiny_drift"}
    assert (out / "config.json").is_file() and (out / "glue_merge.yaml").is_file()


def test_select_evolutionary_with_layer_groups_and_params(tiny_zoo, tmp_path, capsys):
    out = tmp_path / "evo"
    assert main(["select", "--zoo", "tiny", "--strategy", "evolutionary", "--method", "task_arithmetic", "--out",
                 str(out), "--limit", "2", "--trials", "2", "--num-groups", "1", "--param", "lambda=0.5",
                 "--members", "tiny_ft_add", "tiny_ft_cmp", "--seed", "4", "--quiet"]) == 0
    cap = capsys.readouterr()
    text = cap.out
    assert cap.err == ""
    assert "lambda=0.5, trials 2, 1 layer groups, seed 4" in text and "2 candidates: tiny_ft_add, tiny_ft_cmp" in text
    assert "| member | status | weight g0 | weight rest |" in text and "2 evaluations" in text
    assert "population 8, 1 generation," in text
    rec = json.loads((out / "selection.json").read_text())
    assert rec["params"] == {"lambda": 0.5} and yaml.safe_load((out / "glue_merge.yaml").read_text())["params"] == {
        "lambda": 0.5}


@pytest.mark.parametrize("args, message", [
    (["--strategy", "greedy"], "unknown selection strategy 'greedy'"),
    (["--method", "slerp"], "method 'slerp' cannot drive selective merging"),
    (["--trials", "0"], "trials must be an integer >= 1, got 0"),
    (["--members", "tiny_ft_add", "ghost"], "unknown member of zoo 'tiny' 'ghost'"),
    (["--members", "tiny_ft_add"], "selective merging needs at least 2 candidates"),
    (["--param", "lambda"], "--param 'lambda': expected KEY=VALUE"),
    (["--param", "gamma=0.1"], "ties has no parameter 'gamma'"),
    (["--zoo", "nozoo"], "unknown zoo 'nozoo'"),
])
def test_bad_input_exits_2_without_output(args, message, tiny_zoo, tmp_path, capsys):
    base = {"--zoo": "tiny", "--strategy": "coefficient", "--method": "ties", "--out": str(tmp_path / "out"),
            "--limit": "1"}
    for k, v in zip(args[::2], args[1::2]):
        base.pop(k, None)
    argv = ["select", *[x for kv in base.items() for x in kv], *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("glue select: error: ") and message in err
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_zoo_without_base_and_existing_output(tiny_dirs, tmp_path, capsys):
    zoo = tmp_path / "z.yaml"
    zoo.write_text(yaml.safe_dump({"name": "nb", "tasks": ["add"], "members": [
        {"name": n, "source": str(tiny_dirs[n])} for n in ("tiny_ft_add", "tiny_ft_cmp")]}))
    assert main(["select", "--zoo", str(zoo), "--strategy", "all", "--method", "dare_ties", "--out",
                 str(tmp_path / "o")]) == 2
    assert "method 'dare_ties' needs a base model" in capsys.readouterr().err and not (tmp_path / "o").exists()
    (tmp_path / "o").mkdir()
    assert main(["select", "--zoo", str(zoo), "--strategy", "all", "--method", "linear", "--out",
                 str(tmp_path / "o")]) == 2
    assert "already exists (pass --overwrite" in capsys.readouterr().err and list((tmp_path / "o").iterdir()) == []
    assert main(["select", "--zoo", "tiny"]) == 2
    assert "missing --strategy, --method, --out" in capsys.readouterr().err


def test_list_shows_every_strategy(capsys):
    assert main(["select", "--list"]) == 0
    text = capsys.readouterr().out
    assert all(f"| {n} |" in text for n in STRATEGIES.names())


def test_parse_params():
    assert parse_params(["lambda=0.5", "normalize=true", "rescale=l1"]) == {"lambda": 0.5, "normalize": True,
                                                                            "rescale": "l1"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_params(["=3"])


def test_select_resolves_the_evaluation_options_once_and_passes_the_spec_whole(tiny_zoo, tmp_path, monkeypatch):
    """The verb builds one ``EvalSpec`` from its options (auto -> native on surrogate tasks) and ``prepare`` gets it
    whole, no loose evaluator/limit/device keywords."""
    import glue.select.pipeline as pipeline
    from glue.eval import EvalSpec

    seen = {}

    def spy(zoo, strategy, method, **kw):
        seen.update(kw)
        raise ConfigError("stop here")

    monkeypatch.setattr(pipeline, "prepare", spy)
    assert main(["select", "--zoo", "tiny", "--strategy", "average", "--method", "linear", "--out",
                 str(tmp_path / "o"), "--limit", "3", "--device", "cpu"]) == 2
    assert seen["eval"] == EvalSpec(tiny_zoo.tasks, "test", "native", 3, "cpu")
    assert not {"evaluator", "limit", "device", "tasks"} & set(seen)
    assert main(["select", "--zoo", "tiny", "--strategy", "average", "--method", "linear", "--out",
                 str(tmp_path / "o"), "--limit", "0"]) == 2  # refused at the edge, naming the option
