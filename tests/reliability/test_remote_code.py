"""Code shipped with a model never runs (issue 25, items 6-8).

A copy of a tiny zoo member gets a tokenizer (or model) whose ``auto_map`` points at a Python file that,
when imported, writes a marker file. ``glue mix`` and ``glue merge`` run in a pseudo-terminal with ``y``
typed on standard input (transformers would ask "Do you wish to run the custom code? [y/N]"): the marker
must never appear, the command exits 2 with the reason, no traceback, and no output directory. Without a
terminal, the same input is the same clear error (not an ``EOFError`` traceback).

Every ``from_pretrained`` in glue goes through ``glue.io.hfconfig.from_pretrained`` (checked on the
source), which refuses such a model up front and passes ``trust_remote_code=False``.
"""

from __future__ import annotations

import ast
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

EVIL_CODE = '''"""A model's own code: importing it writes the marker (the test asserts it never does)."""
import os
from pathlib import Path

Path(os.environ["GLUE_TEST_EVIL_MARKER"]).write_text("the model's own code ran\\n")

from transformers import PreTrainedTokenizerFast, LlamaConfig, LlamaForCausalLM


class EvilTokenizer(PreTrainedTokenizerFast):
    pass


class EvilConfig(LlamaConfig):
    model_type = "evil"


class EvilModel(LlamaForCausalLM):
    config_class = EvilConfig
'''


def evil_copy(src: Path, dst: Path, where: str = "tokenizer") -> Path:
    """A copy of model directory ``src`` whose tokenizer (``where="tokenizer"``) or model (``"model"``:
    ``auto_map`` and an unknown ``model_type``) needs ``evil.py``."""
    shutil.copytree(src, dst)
    (dst / "evil.py").write_text(EVIL_CODE)
    if where == "tokenizer":
        f = dst / "tokenizer_config.json"
        d = json.loads(f.read_text())
        d.update(tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]})
    else:
        f = dst / "config.json"
        d = json.loads(f.read_text())
        d.update(model_type="evil", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"})
    f.write_text(json.dumps(d, indent=1))
    return dst


def run_in_pty(argv: list[str], env: dict[str, str], cwd: Path, answer: bytes = b"y\n",
               timeout: float = 300) -> tuple[int, str]:
    """``python -m glue ARGV`` with a pseudo-terminal as stdin/stdout/stderr; ``answer`` is typed at once
    and again whenever a ``[y/N]`` prompt shows. Returns ``(exit status, everything printed)``."""
    master, slave = os.openpty()
    p = subprocess.Popen([sys.executable, "-m", "glue", *argv], stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                         env=env, start_new_session=True)
    os.close(slave)
    os.write(master, answer)
    out, t0 = b"", time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                if b"[y/N]" in chunk:
                    os.write(master, answer)
            elif p.poll() is not None:
                break
        rc = p.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    return rc, out.decode(errors="replace").replace("\r\n", "\n")


@pytest.fixture
def evil(tiny_dirs, tmp_path, monkeypatch):
    """Model directories (copies of tiny members; ``add_tok``: tokenizer needs evil.py; ``cmp_model``: the
    model does) and the environment: the marker path, transformers' module cache in tmp."""
    d = tmp_path / "models"
    dirs = {"add": Path(shutil.copytree(tiny_dirs["tiny_ft_add"], d / "add")),
            "cmp": Path(shutil.copytree(tiny_dirs["tiny_ft_cmp"], d / "cmp")),
            "base": Path(shutil.copytree(tiny_dirs["tiny_base"], d / "base")),
            "add_tok": evil_copy(tiny_dirs["tiny_ft_add"], d / "add_tok"),
            "base_tok": evil_copy(tiny_dirs["tiny_base"], d / "base_tok"),
            "cmp_model": evil_copy(tiny_dirs["tiny_ft_cmp"], d / "cmp_model", "model")}
    marker = tmp_path / "PWNED"
    env = dict(os.environ)
    env.pop("GLUE_KILL_AT", None)
    env.update(GLUE_TEST_EVIL_MARKER=str(marker), HF_MODULES_CACHE=str(tmp_path / "hf_modules"),
               GLUE_RESULTS=str(tmp_path / "results"), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    env.pop("TRANSFORMERS_TRUST_REMOTE_CODE", None)
    return dirs, marker, env


def _mix_cfg(tmp: Path, dirs: dict, where: str) -> Path:
    """A glue mixture (router hidden: it loads a tokenizer) whose expert, shared model or mergekit-moe
    base_model has the remote-code tokenizer."""
    p = tmp / f"mix-{where}.yaml"
    if where == "base_model":
        cfg = {"base_model": str(dirs["base_tok"]), "gate_mode": "hidden", "experts": [
            {"source_model": str(dirs["add"]), "positive_prompts": ["12+35="]},
            {"source_model": str(dirs["cmp"]), "positive_prompts": ["3<5?"]}]}
    else:
        first = dirs["add_tok"] if where == "expert" else dirs["add"]
        cfg = {"level": "ffn_level", "router": "hidden", "experts": [
            {"name": "add", "model": str(first), "prompts": ["12+35="]},
            {"name": "cmp", "model": str(dirs["cmp"]), "prompts": ["3<5?"]}]}
        if where == "shared":
            cfg["shared"] = str(dirs["base_tok"])
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def _merge_union_cfg(tmp: Path, dirs: dict) -> Path:
    p = tmp / "merge-union.yaml"
    p.write_text(yaml.safe_dump({"merge_method": "linear", "tokenizer_source": "union", "models": [
        {"model": str(dirs["add"]), "parameters": {"weight": 0.5}},
        {"model": str(dirs["add_tok"]), "parameters": {"weight": 0.5}}]}, sort_keys=False))
    return p


PTY_CASES = ["mix: expert tokenizer", "mix: shared tokenizer", "mix: mergekit-moe base_model tokenizer",
             "merge: tokenizer_source union"]


def _argv(case: str, tmp: Path, dirs: dict) -> list[str]:
    if case.startswith("mix"):
        where = {"mix: expert tokenizer": "expert", "mix: shared tokenizer": "shared"}.get(case, "base_model")
        return ["mix", str(_mix_cfg(tmp, dirs, where)), "--out", str(tmp / "out")]
    return ["merge", str(_merge_union_cfg(tmp, dirs)), "--out", str(tmp / "out"), "--no-progress"]


@pytest.mark.parametrize("case", PTY_CASES, ids=[c.replace(" ", "_").replace(":", "") for c in PTY_CASES])
def test_in_a_terminal_answering_y_the_models_code_never_runs(case, evil, tmp_path, rel):
    dirs, marker, env = evil
    t0 = time.perf_counter()
    rc, out = run_in_pty(_argv(case, tmp_path, dirs), env, rel.repo)
    seconds = time.perf_counter() - t0
    print(f"--- {case}: exit {rc}, {seconds:.1f} s, marker {'WRITTEN' if marker.exists() else 'absent'}\n{out}")
    rel.record_row(f"remote code in a terminal, y typed: {case}", out.split("error: ", 1)[-1], seconds,
                   f"marker {'WRITTEN' if marker.exists() else 'absent'}; out {'exists' if (tmp_path / 'out').exists() else 'absent'}")
    assert not marker.exists(), f"the model's own code ran:\n{out}"
    assert rc == 2, out
    assert "needs its own Python code" in out and "trust_remote_code=False" in out, out
    assert "Traceback" not in out and "[y/N]" not in out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", PTY_CASES, ids=[c.replace(" ", "_").replace(":", "") for c in PTY_CASES])
def test_without_a_terminal_the_same_clear_error(case, evil, tmp_path, rel):
    dirs, marker, env = evil
    p = subprocess.run([sys.executable, "-m", "glue", *_argv(case, tmp_path, dirs)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, cwd=rel.repo, env=env, timeout=300)
    assert not marker.exists()
    assert p.returncode == 2 and "needs its own Python code" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and "EOFError" not in p.stderr
    assert not (tmp_path / "out").exists()


def test_from_pretrained_refuses_before_transformers_and_passes_false(evil, monkeypatch):
    """The helper itself: refusal with the reason for a tokenizer or a model that needs its own code; for a
    plain model, transformers is called with trust_remote_code=False and local_files_only=True."""
    import transformers

    from glue.errors import CheckpointError
    from glue.io.hfconfig import from_pretrained, needs_remote_code

    dirs, marker, _ = evil
    assert needs_remote_code(dirs["add"]) is None
    assert "auto_map" in needs_remote_code(dirs["add_tok"])
    assert "model_type 'evil'" in needs_remote_code(dirs["cmp_model"], model_type=True) or \
        "auto_map" in needs_remote_code(dirs["cmp_model"])
    for kind, d in (("tokenizer", dirs["add_tok"]), ("model", dirs["cmp_model"]), ("config", dirs["cmp_model"])):
        with pytest.raises(CheckpointError, match="needs its own Python code"):
            from_pretrained(kind, d)
    seen = {}

    def fake(path, **kw):
        seen.update(kw)
        return "loaded"

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    assert from_pretrained("tokenizer", dirs["add"]) == "loaded"
    assert seen == {"trust_remote_code": False, "local_files_only": True}
    assert not marker.exists()


def test_unknown_model_type_without_auto_map_is_refused(evil):
    from glue.errors import CheckpointError
    from glue.io.hfconfig import known_model_type, refuse_remote_code

    dirs, _, _ = evil
    f = dirs["cmp"] / "config.json"
    d = json.loads(f.read_text())
    f.write_text(json.dumps({**d, "model_type": "llama_custom"}))
    with pytest.raises(CheckpointError, match="model_type 'llama_custom' is not an architecture transformers"):
        refuse_remote_code(dirs["cmp"])
    assert known_model_type("llama") and known_model_type("qwen2") and known_model_type("glue_mixture")


def test_glue_mixture_is_a_known_model_type():
    """glue registers its own model type with transformers; the source-text reading of transformers'
    model types (no import) agrees with transformers' own mapping on a few names."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from glue.io.hfconfig import GLUE_MODEL_TYPES, _source_model_types
    from glue.mix.modeling import GlueMixtureConfig

    assert GlueMixtureConfig.model_type in GLUE_MODEL_TYPES
    names = _source_model_types()
    assert names and {"llama", "qwen2", "mixtral", "gpt2"} <= names
    assert names <= set(CONFIG_MAPPING.keys()) | {"gpt-sw3"}


ALLOWED = {("glue/io/hfconfig.py", "cls"): "the helper itself",
           ("glue/merge/lora.py", "PeftModel"): "peft's adapter loader; its base model comes from the helper",
           ("glue/pretrained/gguf.py", "AutoModelForCausalLM"): "a GGUF file; passes trust_remote_code=False"}
"""Direct ``.from_pretrained(`` calls in glue, each with why; every other call goes through
``glue.io.hfconfig.from_pretrained``. A direct transformers call must pass ``trust_remote_code=False``."""


def test_every_from_pretrained_in_glue_goes_through_the_helper(rel):
    bad = []
    for f in sorted((rel.repo / "glue").rglob("*.py")):
        rel_path = str(f.relative_to(rel.repo))
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "from_pretrained":
                owner = node.func.value
                name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "?")
                trc = {k.arg: k.value for k in node.keywords}.get("trust_remote_code")
                false = isinstance(trc, ast.Constant) and trc.value is False
                if (rel_path, name) not in ALLOWED or (name.startswith("Auto") and not false):
                    bad.append(f"{rel_path}:{node.lineno} {name}.from_pretrained")
    assert not bad, f"call glue.io.hfconfig.from_pretrained instead: {bad}"
