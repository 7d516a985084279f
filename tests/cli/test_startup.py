"""Fast start: commands that need no tensors never import torch, transformers, lm-eval or pandas.

Each command runs in a fresh interpreter (``sys.modules`` of this test process is full of torch), and
the heavy modules it imported are read from its ``sys.modules`` at exit. Timings are measured by
``python -m glue.bench.scripts.merge_io --startup``, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "lm_eval", "pandas", "datasets", "safetensors", "matplotlib", "scipy", "sklearn")

PROBE = """
import json, sys
from glue.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


def heavy_imports(*argv: str) -> tuple[int, list[str]]:
    """``(exit code, heavy modules imported)`` of ``glue ARGV`` in a fresh interpreter."""
    p = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                       timeout=120)
    last = json.loads(p.stderr.strip().splitlines()[-1])
    return last["code"], last["heavy"]


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0),
    (["zoo", "list"], 0),
    (["zoo", "list", "--format", "csv"], 0),
    (["zoo", "show", "tiny"], 0),
    (["merge", "--help"], 0),
    (["merge", "no-such-config.yaml", "--out", "out"], 2),  # a typo costs milliseconds
    (["eval", "--zoo", "no-such-zoo"], 2),
    (["eval", "--zoo", "tiny", "--evaluator", "nativ"], 2),
    (["cluster", "--help"], 0),
    (["select", "--help"], 0),
    (["report", "--help"], 0),
])
def test_commands_without_tensors_import_no_heavy_module(argv, code):
    assert heavy_imports(*argv) == (code, [])


@pytest.mark.parametrize("argv", [["report", "--zoo", "no-such-zoo"], ["merge", "--list"]])
def test_tables_import_no_torch(argv):
    """``glue report`` and ``glue merge --list`` render tables with pandas (not yet pandas-free), but never
    need torch."""
    _, heavy = heavy_imports(*argv)
    assert "torch" not in heavy and "transformers" not in heavy and "lm_eval" not in heavy


def test_the_probe_sees_a_heavy_import(tmp_path):
    """The probe itself: a valid merge config gets past validation to the executor, which imports torch
    (and then finds no checkpoint in the empty directories), and the probe says so."""
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    (tmp_path / "ok.yaml").write_text("method: linear\nmodels: [a, b]\n")
    code, heavy = heavy_imports("merge", str(tmp_path / "ok.yaml"), "--out", str(tmp_path / "out"))
    assert code == 2 and "torch" in heavy

BAD_MERGE_CONFIGS = {  # config body -> a phrase of the error; model directories a and b exist (empty)
    "unknown method": ("method: linaer\nmodels: [a, b]\n", "Did you mean 'linear'"),
    "unknown parameter": ("method: ties\nbase: a\nmodels: [b]\nparams: {lamda: 0.5}\n", "no parameter 'lamda'"),
    "parameter out of range": ("method: slerp\nmodels: [a, b]\nparams: {t: 1.5}\n", "'t' = 1.5"),
    "missing base": ("method: ties\nmodels: [a, b]\n", "needs a base model"),
    "unknown field": ("method: linear\nmodels: [a, b]\nweigths: [1, 2]\n", "unknown field 'weigths'"),
    "wrong type": ("method: linear\nmodels: [{model: a, weight: heavy}, b]\n", "must be a number"),
    "bad dtype": ("method: linear\nmodels: [a, b]\ndtype: bf17\n", "dtype 'bf17' is not one of"),
    "mergekit format": ("merge_method: ties\nbase_model: a\nmodels: [{model: b, parameters: {density: 2}}]\n",
                        "must be in (0, 1]"),
}


@pytest.mark.parametrize("case", sorted(BAD_MERGE_CONFIGS))
def test_a_bad_merge_config_fails_before_torch_is_imported(case, tmp_path):
    """Issue 15: every config error of ``glue merge`` is found by reading the YAML and the methods'
    declarations, without importing torch (a typo costs milliseconds, not the 2-3 s of ``import torch``)."""
    body, phrase = BAD_MERGE_CONFIGS[case]
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(body)
    p = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), "merge", str(cfg), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    *message, last = p.stderr.strip().splitlines()
    assert phrase in "\n".join(message)
    assert json.loads(last) == {"code": 2, "heavy": []}
    assert not (tmp_path / "out").exists()


_LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 100}
_TWO = "experts:\n  - {name: a, model: a, prompts: [x]}\n  - {name: b, model: b, prompts: [y]}\n"
BAD_MIX_CONFIGS = {  # config body -> a phrase of the error; a and b hold a 2-layer Llama config.json, c a wider one
    "unknown level": ("level: blok_level\nrouter: centroids\n" + _TWO, "blok_level"),
    "unknown router": ("level: block_level\nrouter: hiden\n" + _TWO, "hiden"),
    "unknown routing": ("level: block_level\nrouter: centroids\nrouting: token\n" + _TWO, "routing: 'token'"),
    "top_k too large": ("level: ffn_level\nrouter: centroids\ntop_k: 3\n" + _TWO, "top_k: 3 is out of range"),
    "top_k zero": ("level: ffn_level\nrouter: centroids\ntop_k: 0\n" + _TWO, "top_k: 0 is out of range"),
    "dense_layers too many": ("level: model_level\nrouter: centroids\ndense_layers: 2\n" + _TWO,
                              "dense_layers: 2 is out of range"),
    "expert without prompts": ("level: model_level\nrouter: hidden\nexperts:\n  - {name: a, model: a}\n"
                               "  - {name: b, model: b, prompts: [y]}\n", "needs prompts for every expert"),
    "experts of different shapes": ("level: ffn_level\nrouter: random\nexperts:\n  - {model: a}\n  - {model: c}\n",
                                     "hidden_size"),
    "unknown key": ("level: ffn_level\nrouter: random\ntopk: 2\nexperts: [{model: a}]\n", "unknown key(s) ['topk']"),
    "mergekit-moe unsupported": ("base_model: a\ngate_mode: hidden\nexperts:\n  - {source_model: a, positive_prompts: [x],"
                                 " noise_scale: 0.1}\n", "'noise_scale' is not supported"),
    "mergekit-moe gate_mode": ("base_model: a\ngate_mode: uniform_random\nexperts: [{source_model: a}]\n",
                               "gate_mode 'uniform_random' is not supported"),
}


@pytest.mark.parametrize("case", sorted(BAD_MIX_CONFIGS))
def test_a_bad_mix_config_fails_before_torch_is_imported(case, tmp_path):
    """Issue 15 item 2 for ``glue mix``: names, ranges, prompts and the experts' config.json are checked
    before torch or transformers is imported, and nothing is written."""
    body, phrase = BAD_MIX_CONFIGS[case]
    for d, cfg in (("a", _LLAMA), ("b", _LLAMA), ("c", {**_LLAMA, "hidden_size": 64})):
        (tmp_path / d).mkdir()
        (tmp_path / d / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "bad.yaml").write_text(body)
    p = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), "mix", str(tmp_path / "bad.yaml"), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    *message, last = p.stderr.strip().splitlines()
    assert phrase in "\n".join(message)
    assert json.loads(last) == {"code": 2, "heavy": []}
    assert not (tmp_path / "out").exists()


def test_a_valid_mix_config_gets_past_validation_to_torch(tmp_path):
    """The probe sees the import when validation passes (the build then finds no weights: exit 2)."""
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "config.json").write_text(json.dumps(_LLAMA))
    (tmp_path / "ok.yaml").write_text("level: block_level\nrouter: centroids\n" + _TWO)
    # imports torch and transformers: minutes when the machine is busy and this process niced
    p = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), "mix", str(tmp_path / "ok.yaml"), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    last = json.loads(p.stderr.strip().splitlines()[-1])
    assert last["code"] == 2 and "torch" in last["heavy"]
    assert not (tmp_path / "out").exists()
