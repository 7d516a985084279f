"""Character-level tokenizer saved as a standard Hugging Face fast tokenizer (reloads with AutoTokenizer).

One character is one token; ``tok(text)`` prepends ``<bos>`` (a TemplateProcessing post-processor,
which is also what makes lm-eval's HFLM add BOS); decoding fuses characters without spaces.
"""

from __future__ import annotations

import string
from functools import lru_cache

CHARS = list(string.digits + string.ascii_lowercase + " +-*=,:;?|<>()._\n")
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
PAD, BOS, EOS, UNK = 0, 1, 2, 3
VOCAB = {t: i for i, t in enumerate(SPECIALS + CHARS)}
VOCAB_SIZE = len(VOCAB)


@lru_cache(maxsize=1)
def char_tokenizer():
    """A ``PreTrainedTokenizerFast`` over ``CHARS`` with specials <pad>, <bos>, <eos>, <unk>."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel(vocab=VOCAB, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", BOS)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        clean_up_tokenization_spaces=False, model_max_length=64,
    )


def encode(text: str) -> list[int]:
    """Token ids of ``text`` without BOS (fast path used by training; equals the HF tokenizer's ids)."""
    return [VOCAB.get(c, UNK) for c in text]
