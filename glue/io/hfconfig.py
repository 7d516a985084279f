"""A model directory's ``config.json``, read without importing torch (config validation runs before any
tensor work: ``glue merge``/``glue mix`` refuse a bad config in milliseconds), and the one rule for
code shipped with a model: glue never runs it.

- ``needs_remote_code(path)``: why a model directory would need its own Python code (``auto_map`` in
  ``config.json`` or ``tokenizer_config.json``, a ``model_type`` transformers does not implement), or
  None. ``refuse_remote_code(path)`` raises ``CheckpointError`` with that reason. Every verb calls it on
  every model, base, shared model, tokenizer source and zoo member before anything is loaded.
- ``from_pretrained(kind, path, ...)``: the one way glue calls ``AutoModelForCausalLM`` /
  ``AutoTokenizer`` / ``AutoConfig.from_pretrained``: the refusal above first, then transformers with
  ``trust_remote_code=False`` and ``local_files_only=True`` (transformers never prompts, never runs a
  model's ``.py`` file, never reaches the hub).
- ``trust_remote_code_for(dirs)``: the one explicit opt-in (``--trust-remote-code`` of a benchmark run):
  those model directories, and only those, are loaded with ``trust_remote_code=True`` by this process;
  nothing is persisted, every other directory is still refused.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from glue.errors import CheckpointError

CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
GLUE_MODEL_TYPES = ("glue_mixture",)
"""Model types glue registers with transformers' Auto classes itself (``glue.mix.modeling``)."""


def read_config(path: str | os.PathLike) -> dict:
    """Return the parsed ``config.json`` of a model directory, or raise ``CheckpointError`` naming it."""
    f = Path(path) / CONFIG_FILE
    if not f.is_file():
        raise CheckpointError(f"missing {f}: not a Hugging Face model directory")
    try:
        return json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt {f}: {e}") from None


def _read_json(f: Path) -> Any:
    try:
        return json.loads(f.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt {f}: {e}") from None


@functools.cache
def _source_model_types() -> frozenset[str]:
    """transformers' ``CONFIG_MAPPING_NAMES`` keys read from its source text (importing transformers
    takes seconds; glue refuses a bad input before that); empty when the text has another layout."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("transformers")
    except (ImportError, ValueError):
        return frozenset()
    names: set[str] = set()
    for loc in (spec.submodule_search_locations or []) if spec else []:
        for fname in ("auto_mappings.py", "configuration_auto.py"):
            f = Path(loc) / "models" / "auto" / fname
            text = f.read_text() if f.is_file() else ""
            m = re.search(r"CONFIG_MAPPING_NAMES = OrderedDict\(\s*\[(.*?)\]\s*\)", text, re.S)
            if m:
                names |= set(re.findall(r'\(\s*"([^"]+)",\s*"\w+"\s*,?\s*\)', m.group(1)))
    return frozenset(names) if len(names) >= 50 else frozenset()


def known_model_type(model_type: str) -> bool:
    """Whether transformers (with glue's registrations) implements ``model_type`` without a model's
    own code."""
    if model_type in GLUE_MODEL_TYPES:
        return True
    if "transformers" not in sys.modules:
        names = _source_model_types()
        if names:
            return model_type in names
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return model_type in CONFIG_MAPPING


def needs_remote_code(path: str | os.PathLike, *, model_type: bool = True, config_required: bool = True) -> str | None:
    """Why model directory ``path`` would need Python code shipped with it, or None.

    Looks at ``config.json`` and ``tokenizer_config.json``: an ``auto_map`` entry (transformers would
    import the model's own ``.py`` files), or (``model_type=True``) a ``model_type`` that transformers
    does not implement. Raises ``CheckpointError`` for a corrupt file, and for a missing ``config.json``
    unless ``config_required`` is False (a tokenizer-only directory)."""
    p = Path(path)
    cfg = read_config(p) if config_required or (p / CONFIG_FILE).exists() else {}
    tok_f = p / TOKENIZER_CONFIG_FILE
    for f, d in ((p / CONFIG_FILE, cfg), (tok_f, _read_json(tok_f) if tok_f.is_file() else {})):
        if isinstance(d, dict) and d.get("auto_map"):
            am = d["auto_map"]
            what = sorted(am) if isinstance(am, dict) else am
            return f"{f}: has auto_map {what}: the model needs its own Python code"
    mt = cfg.get("model_type") if isinstance(cfg, dict) else None
    if model_type and mt is not None and (not isinstance(mt, str) or not known_model_type(mt)):
        return (f"{p / CONFIG_FILE}: model_type {mt!r} is not an architecture transformers implements: "
                f"the model needs its own Python code")
    return None


_TRUSTED: set[Path] = set()
"""Model directories (resolved) whose own code the user opted in to run, in this process only."""


def trust_remote_code_for(dirs) -> list[Path]:
    """The explicit opt-in: model directories ``dirs`` may run the Python code shipped with them when glue
    loads them, in this process only (``from_pretrained`` passes ``trust_remote_code=True`` for them,
    ``refuse_remote_code`` lets them through). Returns the resolved directories."""
    out = [Path(d).resolve() for d in dirs]
    _TRUSTED.update(out)
    return out


def is_trusted(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory the user opted in to run the code of (``trust_remote_code_for``)."""
    return bool(_TRUSTED) and Path(path).resolve() in _TRUSTED


def refuse_remote_code(path: str | os.PathLike, what: str = "model", *, model_type: bool = True,
                       config_required: bool = True) -> dict:
    """The config of model directory ``path`` ({} when absent and not required); ``CheckpointError``
    naming ``what``, the file and the reason when the model or its tokenizer needs its own Python code
    (see ``needs_remote_code``) and the user did not opt in for ``path`` (``trust_remote_code_for``)."""
    why = None if is_trusted(path) else needs_remote_code(path, model_type=model_type, config_required=config_required)
    if why:
        raise CheckpointError(f"{what}: {why}; glue never runs code shipped with a model "
                              f"(trust_remote_code=False). Use a checkpoint of an architecture transformers "
                              f"implements")
    return read_config(path) if config_required or (Path(path) / CONFIG_FILE).exists() else {}


AUTO_CLASSES = {"model": "AutoModelForCausalLM", "tokenizer": "AutoTokenizer", "config": "AutoConfig"}


def from_pretrained(kind: str, path: str | os.PathLike, *, what: str | None = None,
                    trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """``transformers.<Auto class of kind>.from_pretrained(path)`` from a local directory, never running
    code shipped with it.

    ``kind``: ``model`` (``AutoModelForCausalLM``), ``tokenizer`` or ``config``. The directory is checked
    with ``refuse_remote_code`` first (``what`` names it in the error), then loaded with
    ``trust_remote_code`` (False) and ``local_files_only=True`` unless ``kwargs`` say otherwise.
    A directory the user opted in for (``trust_remote_code_for``) is loaded with ``trust_remote_code=True``."""
    if kind not in AUTO_CLASSES:
        raise ValueError(f"from_pretrained: kind {kind!r}; allowed: {', '.join(AUTO_CLASSES)}")
    if trust_remote_code is not True:
        trust_remote_code = is_trusted(path)
    if not trust_remote_code:
        # a tokenizer-only folder or a GGUF file (tensors and metadata, no config.json): the files present are checked
        refuse_remote_code(path, what or kind, config_required=kind != "tokenizer" and "gguf_file" not in kwargs)
    import transformers

    cls = getattr(transformers, AUTO_CLASSES[kind])
    kwargs.setdefault("local_files_only", True)
    return cls.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
