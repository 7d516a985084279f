"""Shared fixtures: the `tiny` surrogate zoo (built once into $GLUE_CACHE) and random tiny checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GLUE_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "glue"))


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The suite's models are tiny: intra-op threads gain nothing, and when other work competes for the
    cores they slow evaluation down ~100x (measured: 0.1 s vs 11-23 s for 48 items of a tiny member
    under load). Tests that need another count set it themselves."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_zoo():
    """The `tiny` zoo, built (or found in the cache) once per session."""
    from glue.surrogate.build import build_models
    from glue.zoo import get_zoo

    z = get_zoo("tiny")
    build_models([m.source.split(":", 1)[1] for m in z.all_models()], progress=False)
    return z


@pytest.fixture(scope="session")
def tiny_dirs(tiny_zoo) -> dict[str, Path]:
    """Member name -> checkpoint directory, for every model of `tiny` (base included)."""
    from glue.zoo import resolve

    return {m.name: resolve(m) for m in tiny_zoo.all_models()}


@pytest.fixture
def make_llama(tmp_path):
    """Factory: a random LlamaForCausalLM checkpoint (+ char tokenizer) saved under tmp_path.

    ``make_llama(name, seed=0, hidden=32, layers=2, parent=None, noise=0.0)``: with ``parent`` (a
    directory), start from its weights and add Gaussian noise of std ``noise`` (a "fine-tune").
    """
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from glue.surrogate.tokenizer import BOS, EOS, PAD, VOCAB_SIZE, char_tokenizer

    def make(name: str, seed: int = 0, hidden: int = 32, layers: int = 2, parent: Path | None = None,
             noise: float = 0.0, dtype=torch.float32) -> Path:
        torch.manual_seed(seed)
        if parent is not None:
            m = AutoModelForCausalLM.from_pretrained(parent)
            with torch.no_grad():
                for p in m.parameters():
                    p.add_(noise * torch.randn_like(p))
        else:
            m = LlamaForCausalLM(LlamaConfig(
                vocab_size=VOCAB_SIZE, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False,
                bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD))
        out = tmp_path / name
        m.to(dtype).save_pretrained(out)
        char_tokenizer().save_pretrained(out)
        return out

    return make


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    """Tests never write into the repository's results/: $GLUE_RESULTS points into the test's tmp dir."""
    monkeypatch.setenv("GLUE_RESULTS", str(tmp_path / "results"))


@pytest.fixture
def provenance():
    """A fixed ``Provenance`` (commit ``aaaa...``, 2025-01-02), for records made without git or clocks."""
    from glue.record.provenance import Provenance

    machine = {"hostname": "h", "platform": "p", "python": "3.11", "cpu": "c", "cores": 2, "ram_gb": 1.0, "gpu": None}
    return Provenance("0.0.0", "a" * 40, False, "2025-01-02T03:04:05.000000Z", machine, {"torch": "2.0"})


@pytest.fixture
def record_cases(tmp_path, provenance, monkeypatch):
    """Factory: record fake cases into the results root ``tmp_path/results`` without evaluating anything.

    ``record_cases({"single-base": ({"add": 0.5}, {"member": "base", "role": "base"}), ...}, zoo="tiny")``
    (``zoo_fingerprint=`` stamps them with a zoo fingerprint) returns the records; case functions return only scores (plus ``n`` = 10 items per task). Skips the
    recorder's garbage collection before each case (0.1 s each once torch is loaded; nothing to free here).
    """
    from glue.record import recorder
    from glue.eval import EvalSpec
    from glue.record.recorder import Recorder

    monkeypatch.setattr(recorder, "release_free_memory", lambda: None)

    def record(cases: dict, zoo: str = "tiny", zoo_fingerprint: str | None = None, **settings):
        rec = Recorder(zoo, EvalSpec(**{"evaluator": "native", **settings}), root=tmp_path / "results",
                       provenance=provenance, zoo_fingerprint=zoo_fingerprint)
        return [rec.measure(case, config, lambda s=scores: {"scores": s, "n": {t: 10 for t in s}, "eval_seconds": 1.0})
                for case, (scores, config) in cases.items()]

    return record


@pytest.fixture(scope="session")
def _warm_imports(tiny_dirs):
    """Import, once and before any pytester snapshot, the modules transformers and torch import lazily."""
    import torch
    import torch.distributed._functional_collectives  # noqa: F401

    from glue.eval import evaluate
    from glue.io import load_model

    for name in ("tiny_base", "tiny_other"):
        model, tok = load_model(tiny_dirs[name])
        with torch.no_grad():
            evaluate(model, tok, ["add", "cmp"], "search", "native", limit=1)


@pytest.fixture
def pytester(_warm_imports, pytester):
    """pytester whose in-process runs find transformers' and torch's lazily imported modules already
    imported: pytester restores ``sys.modules`` after each run, and a module first imported inside a
    run (``LlamaConfig``, torch's functional collectives) is half-registered for the next one."""
    return pytester
