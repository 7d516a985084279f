"""Prototype (issue 23, session 9), superseded by glue.eval.native.continuation_logprobs (session 10, --mc-scoring prompt_once): multiple-choice scoring that reads each prompt once, batched.
Left-padded prompts (all but their last token) -> KV cache; then per choice index one batched pass of
[last prompt token + choice[:-1]] on a copy of the cache. Compared with glue.eval.native.mc_predictions on smol4 ft_add.
Run: GLUE_CACHE=<cache with smol4> .venv/bin/python docs/notes/mc_prompt_once.py
"""
import time, torch, copy
from glue.io.checkpoint import load_model
from glue.zoo import get_zoo, resolve
from glue.eval import EvalSpec
from glue.eval.native import mc_predictions
torch.set_num_threads(1)
zoo = get_zoo("smol4")
model, tok = load_model(resolve(zoo.member("ft_add")))
spec = EvalSpec(tuple(zoo.tasks), "search", "native")
PAD = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

@torch.no_grad()
def mc_batched(model, tok, items):
    ctxs = tok([it.prompt for it in items], add_special_tokens=True)["input_ids"]
    B = len(items); P = max(len(c) for c in ctxs) - 1
    ids = torch.full((B, P), PAD); mask = torch.zeros(B, P, dtype=torch.long)
    for k, c in enumerate(ctxs):
        body = c[:-1]; ids[k, P - len(body):] = torch.tensor(body); mask[k, P - len(body):] = 1
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    kv = out.past_key_values
    nchoice = len(items[0].choices)
    scores = [[0.0] * nchoice for _ in items]
    for j in range(nchoice):
        conts = [tok([it.choices[j]], add_special_tokens=False)["input_ids"][0] for it in items]
        L = max(len(c) for c in conts)
        x = torch.full((B, L), PAD); m2 = torch.zeros(B, L, dtype=torch.long)
        for k, (c, ctx) in enumerate(zip(conts, ctxs)):
            seq = [ctx[-1]] + c[:-1]; x[k, :len(seq)] = torch.tensor(seq); m2[k, :len(seq)] = 1
        p2 = pos[:, -1:] + 1 + torch.arange(L)[None, :]
        o = model(input_ids=x, attention_mask=torch.cat([mask, m2], 1), position_ids=p2,
                  past_key_values=copy.deepcopy(kv), use_cache=True)
        lp = torch.log_softmax(o.logits.float(), -1)
        for k, c in enumerate(conts):
            scores[k][j] = sum(lp[k, i, t].item() for i, t in enumerate(c))
    return [max(range(len(sc)), key=lambda j: (sc[j], -j)) for sc in scores]

for split in ("search", "test"):
    for t in spec.task_specs():
        if t.kind != "mc": continue
        items = t.items(split)
        t0 = time.time(); a = mc_predictions(model, tok, items); ta = time.time() - t0
        t0 = time.time(); b = mc_batched(model, tok, items); tb = time.time() - t0
        print(split, t.name, len(items), "full", round(ta, 2), "batched prompt-once", round(tb, 2), "differ", sum(x != y for x, y in zip(a, b)))
