"""Vocabularies of merged models: reading a model's token -> id map from its tokenizer files, and
telling the embedding and lm_head tensors (rows = token ids) apart from the others.

Pure file reading (``tokenizer.json``, else ``vocab.json`` + ``added_tokens.json``); no model is
loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

VOCAB_TENSORS = ("embed_tokens.weight", "lm_head.weight", "wte.weight", "word_embeddings.weight")
"""Name endings of tensors whose rows are indexed by token id (Llama/Mistral/Qwen, GPT-2, BLOOM)."""


def is_vocab_tensor(name: str) -> bool:
    """Whether tensor ``name`` has one row per token (an input embedding or an output head)."""
    return name.endswith(VOCAB_TENSORS)


def read_vocab(path: str | os.PathLike) -> dict[str, int] | None:
    """``token -> id`` of the tokenizer in model directory ``path`` (added tokens included), or None
    when it has no tokenizer files glue can read."""
    p = Path(path)
    f = p / "tokenizer.json"
    if f.is_file():
        data = json.loads(f.read_text())
        model = data.get("model") or {}
        vocab = model.get("vocab")
        out: dict[str, int] = {}
        if isinstance(vocab, dict):
            out.update({str(k): int(v) for k, v in vocab.items()})
        elif isinstance(vocab, list):  # Unigram: [[piece, score], ...], id = position
            out.update({str(e[0]): i for i, e in enumerate(vocab)})
        for t in data.get("added_tokens") or []:
            out[str(t["content"])] = int(t["id"])
        return out
    if (p / "vocab.json").is_file():
        out = {str(k): int(v) for k, v in json.loads((p / "vocab.json").read_text()).items()}
        if (p / "added_tokens.json").is_file():
            out.update({str(k): int(v) for k, v in json.loads((p / "added_tokens.json").read_text()).items()})
        return out
    return None


# -- vocabulary alignment (mergekit's tokenizer_source) ------------------------------------------------
class TokenizerPlan:
    """The output tokenizer of a merge and, for every input, where each output token's row is.

    Built from the inputs' tokenizers (``build``) before any weight is read. The output vocabulary
    is the tokenizer source's (``base``: the base model's, else the first model's; a model
    directory: that model's), or for ``union`` the base's plus, in model order, every token another
    model has (its tokens in id order, then its added tokens). ``perms[i][j]`` is the row of output
    token ``j`` in input ``i`` (-1: the input lacks the token).

    ``align`` builds each input's embedding/lm_head rows in the output order. A token an input lacks
    gets, in every input, as mergekit initialises it: the row of the one model that has it; else
    the base's row when the base has it; else the mean of the rows of the models that have it
    (zero when none has it). Tokens every input has keep each input's own row.

    Args:
        tokenizer: the output tokenizer (a ``transformers`` tokenizer; written by ``write``).
        perms: per input (index into the executor's checkpoints), ``out id -> input row`` (-1 = absent).
        base: index of the base model among the inputs, or None.
        chat_template: a Jinja chat template to store in the output tokenizer, or None.
    """

    def __init__(self, tokenizer, perms: dict[int, list[int]], base: int | None, chat_template: str | None = None):
        self.tokenizer, self.perms, self.base, self.chat_template = tokenizer, perms, base, chat_template
        self.vocab = tokenizer.get_vocab()
        self.size = len(self.vocab)

    @classmethod
    def build(cls, source: str | os.PathLike, models: list[Path], base: int | None,
              chat_template: str | None = None) -> TokenizerPlan:
        """``source``: ``"base"``, ``"union"`` or a model directory; ``models``: every input's
        directory (the executor's checkpoint order); ``base``: index of the base in ``models``."""
        from glue.errors import ConfigError, GlueError
        from glue.io.hfconfig import from_pretrained, refuse_remote_code

        for m in [*models, *([] if source in ("base", "union") else [source])]:  # before any tokenizer is loaded
            refuse_remote_code(m, "tokenizer_source: model", config_required=False)
        toks, sizes = [], []
        for m in models:
            try:
                toks.append(from_pretrained("tokenizer", m))
            except GlueError:
                raise
            except Exception as e:  # noqa: BLE001 - any loading failure means no usable tokenizer
                raise ConfigError(f"tokenizer_source: cannot load the tokenizer of {m}: {e}") from None
            cfg = json.loads((Path(m) / "config.json").read_text())
            sizes.append(int(cfg.get("vocab_size") or (cfg.get("text_config") or {}).get("vocab_size")
                             or len(toks[-1].get_vocab())))
        ref = base if base is not None else 0
        for m, t, n in zip(models, toks, sizes):
            beyond = [k for k, v in t.get_vocab().items() if v >= n]
            if beyond:
                raise ConfigError(f"tokenizer_source: the tokenizer of {m} has {len(beyond)} token(s) with ids beyond "
                                  f"its vocab_size {n} (e.g. {beyond[0]!r}); stripping them is not supported by glue")
        if source == "base":
            out = toks[ref]
        elif source == "union":
            out = _union(toks, ref)
        else:
            try:
                out = from_pretrained("tokenizer", source)
            except GlueError:
                raise
            except Exception as e:  # noqa: BLE001
                raise ConfigError(f"tokenizer_source: cannot load the tokenizer of {source}: {e}") from None
        vocab = out.get_vocab()
        perms = {}
        for i, (t, n) in enumerate(zip(toks, sizes)):
            have = t.get_vocab()
            perm = [-1] * len(vocab)
            for tok, j in vocab.items():
                if tok in have and have[tok] < n:
                    perm[j] = have[tok]
            perms[i] = perm
        return cls(out, perms, base, chat_template)

    def is_vocab(self, name: str) -> bool:
        return is_vocab_tensor(name)

    def apply(self, jobs, sources):
        """The jobs with the embedding/lm_head outputs resized to the output vocabulary."""
        from dataclasses import replace

        return [replace(j, out=replace(j.out, shape=(self.size, *j.out.shape[1:]), rows=None))
                if self.is_vocab(j.out.name) else j for j in jobs]

    def align(self, inputs: list[int], tensors: list, dtype) -> list:
        """Rows of ``tensors`` (one per input index in ``inputs``, ``[rows, *]``) in the output
        vocabulary's order, as ``dtype`` tensors ``[size, *]`` (see the class docstring)."""
        import torch

        perms = [self.perms[i] for i in inputs]
        xs = [t.to(dtype) for t in tensors]
        shape = xs[0].shape[1:]
        defaults = {}
        base = inputs.index(self.base) if self.base is not None and self.base in inputs else None
        for j in range(self.size):
            has = [p[j] >= 0 for p in perms]
            if all(has):
                continue
            n = sum(has)
            if n == 1:
                k = has.index(True)
                defaults[j] = xs[k][perms[k][j]]
            elif n == 0:
                defaults[j] = torch.zeros(shape, dtype=dtype)
            elif base is not None and has[base]:
                defaults[j] = xs[base][perms[base][j]]
            else:
                acc = torch.zeros(shape, dtype=dtype)
                for k in range(len(xs)):
                    if has[k]:
                        acc = acc + xs[k][perms[k][j]]
                defaults[j] = acc / n
        out = []
        for x, p in zip(xs, perms):
            idx = torch.tensor([max(r, 0) for r in p])
            y = x.index_select(0, idx)
            for j, row in defaults.items():
                if p[j] < 0:
                    y[j] = row
            out.append(y)
        return out

    def write(self, out: Path) -> None:
        if self.chat_template:
            self.tokenizer.chat_template = self.chat_template
        self.tokenizer.save_pretrained(out)


def _union(toks: list, ref: int):
    """The base tokenizer plus every other tokenizer's tokens it lacks (deterministic order)."""
    import copy

    out = copy.deepcopy(toks[ref])
    have = set(out.get_vocab())
    added_all = {}
    for t in [toks[ref]] + [t for i, t in enumerate(toks) if i != ref]:
        added = {info.content: info for info in t.added_tokens_decoder.values()}
        for tok, _ in sorted(t.get_vocab().items(), key=lambda kv: kv[1]):
            if tok in added:
                continue
            if tok not in have:
                out.add_tokens(tok)
                have.add(tok)
        for tok, info in added.items():
            added_all.setdefault(tok, info)
    for tok, info in added_all.items():
        if tok not in have:
            out.add_tokens(info)
            have.add(tok)
    return out
