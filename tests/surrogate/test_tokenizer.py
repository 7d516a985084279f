from transformers import AutoTokenizer

from glue.surrogate.skills import EVAL_SKILLS, split
from glue.surrogate.tokenizer import BOS, EOS, char_tokenizer, encode


def test_roundtrip_and_bos_after_reload(tmp_path):
    char_tokenizer().save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    for s in EVAL_SKILLS:
        it = split(s, "search")[0]
        text = it.prompt + it.answer
        ids = tok(text).input_ids
        assert ids[0] == BOS and ids[1:] == encode(text)  # one character, one token; BOS prepended
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.eos_token_id == EOS and tok.decode(tok("a b").input_ids[1:]) == "a b"  # spaces survive
