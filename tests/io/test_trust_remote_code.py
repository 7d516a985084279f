"""The explicit opt-in to run a model's own code (``glue.io.hfconfig.trust_remote_code_for``, what
``pytest benchmarks --trust-remote-code`` calls for the zoo's remote-code members): without it the
checkpoint is refused and its code never runs; with it that directory, and only it, loads with its code,
in that process only."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

CODE = '''
from pathlib import Path
from transformers import LlamaConfig, LlamaForCausalLM
Path(__file__).with_name("{marker}").write_text("ran")  # what the model's own code does when imported

class GlueCustomConfig(LlamaConfig):
    model_type = "glue_custom"

class GlueCustomForCausalLM(LlamaForCausalLM):
    config_class = GlueCustomConfig
'''


def _remote_code_checkpoint(d: Path, marker: str) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from glue.surrogate.tokenizer import char_tokenizer

    cfg = LlamaConfig(vocab_size=51, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=32)
    LlamaForCausalLM(cfg).save_pretrained(d)
    char_tokenizer().save_pretrained(d)
    c = json.loads((d / "config.json").read_text())
    c.update(model_type="glue_custom", architectures=["GlueCustomForCausalLM"],
             auto_map={"AutoConfig": "custom.GlueCustomConfig", "AutoModelForCausalLM": "custom.GlueCustomForCausalLM"})
    (d / "config.json").write_text(json.dumps(c))
    (d / "custom.py").write_text(CODE.format(marker=marker))
    return d


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_a_remote_code_model_runs_its_code_only_for_the_directories_opted_in(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    a = _remote_code_checkpoint(tmp_path / "a", "ran_a")
    b = _remote_code_checkpoint(tmp_path / "b", "ran_b")
    out = _run(f"""
        from glue.errors import GlueError
        from glue.io.checkpoint import load_model
        from glue.io.hfconfig import trust_remote_code_for
        try:
            load_model({str(a)!r}); print("LOADED-WITHOUT-OPT-IN")
        except GlueError as e:
            print("refused:", str(e).splitlines()[0][:200])
        trust_remote_code_for([{str(a)!r}])
        model, tok = load_model({str(a)!r})
        print("loaded", type(model).__name__)
        try:
            load_model({str(b)!r}); print("LOADED-B")
        except GlueError as e:
            print("b refused")
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("refused:") and "auto_map" in lines[0], lines
    assert lines[1:] == ["loaded GlueCustomForCausalLM", "b refused"], out.stdout
    assert (tmp_path / "modules").exists()  # transformers imported the model's own module: the opt-in was real
    assert not (b / "ran_b").exists()  # b's code never ran
    again = _run(f"from glue.io.checkpoint import load_model\nload_model({str(a)!r})")  # a new process: no opt-in
    assert again.returncode != 0 and "auto_map" in again.stderr

