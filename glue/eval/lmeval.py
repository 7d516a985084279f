"""lm-eval 0.4 on an in-memory model (``HFLM(pretrained=model, tokenizer=tok)``), fully offline for
local tasks.

Local tasks (the surrogate skills) ship as JSONL (``TaskSpec.data_file(split)``) and are rendered
to lm-eval task YAMLs with absolute ``data_files`` paths (lm-eval resolves relative paths against
the working directory) in ``$GLUE_CACHE/lm_eval_tasks/``. Silent pitfalls handled here (see the
environment reference): ``target_delimiter: ""`` (the default " " scores " 59" instead of "59" on a
character-level model), an explicit ``max_gen_toks`` (the default 256 exceeds a 64-position model),
batch size passed to HFLM itself (``simple_evaluate`` ignores it for LM objects), BOS added by the
tokenizer's post-processor, ``HF_DATASETS_OFFLINE``/``HF_HUB_OFFLINE`` set before import.

A model that routes on the prompt (``routes_on_prompt = True``, the glue mixtures) runs under
``PromptAwareHFLM``: lm-eval scores a choice as one row ``context + continuation`` with no attention
mask, so the model could not tell where the prompt ends; the subclass remembers each row's context
length and passes ``prompt_mask`` (generation needs nothing: the prompt is the whole input there).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

from glue.errors import ConfigError
from glue.eval.tasks import TaskSpec
from glue.paths import cache_dir

def lm_eval_name(spec: TaskSpec, split: str) -> str:
    return f"{spec.lm_eval_task}_{split}" if spec.local else spec.lm_eval_task


def _yaml(spec: TaskSpec, split: str) -> str:
    if hasattr(spec, "lm_eval_yaml"):  # a local task with its own YAML (glue.eval.humaneval)
        return spec.lm_eval_yaml(lm_eval_name(spec, split), split)
    path = spec.data_file(split).resolve()
    head = (f"task: {lm_eval_name(spec, split)}\ndataset_path: json\n"
            f"dataset_kwargs: {{data_files: {{test: \"{path}\"}}}}\ntest_split: test\n"
            f"doc_to_text: \"{{{{prompt}}}}\"\ntarget_delimiter: \"\"\nmetadata: {{version: 1.0}}\n")
    if spec.kind == "mc":
        return head + ("output_type: multiple_choice\ndoc_to_choice: choices\ndoc_to_target: label\n"
                       "metric_list: [{metric: acc, aggregation: mean, higher_is_better: true}]\n")
    n = spec.max_gen_toks
    return head + ("output_type: generate_until\ndoc_to_target: \"{{answer}}\"\n"
                   f"generation_kwargs: {{until: [\"\\n\", \"<eos>\"], max_gen_toks: {n}, do_sample: false}}\n"
                   "metric_list: [{metric: exact_match, aggregation: mean, higher_is_better: true}]\n")


def render_tasks(specs: list[TaskSpec], splits: tuple[str, ...] = ("test", "search")) -> Path:
    """Write the lm-eval YAMLs of the local ``specs`` into a content-addressed cache folder."""
    texts = {f"{lm_eval_name(s, sp)}.yaml": _yaml(s, sp) for s in specs if s.local for sp in splits}
    h = hashlib.sha256("".join(k + v for k, v in sorted(texts.items())).encode()).hexdigest()[:12]
    out = cache_dir() / "lm_eval_tasks" / h
    if not out.is_dir():
        from glue.io import atomic_dir

        try:
            with atomic_dir(out, kind="lm_eval_tasks", checked=False) as tmp:
                for name, text in texts.items():
                    (tmp / name).write_text(text)
        except FileExistsError:  # another process rendered it first
            pass
    return out


def run_lm_eval(model, tokenizer, spec):
    """Return ``(scores, n, per_item, item_ids)`` for the tasks of ``spec`` (a ``glue.eval.EvalSpec``, checked:
    tasks that run model-written code are in it only with ``allow_code_execution``) via
    ``lm_eval.simple_evaluate``: one call per few-shot count (``TaskSpec.num_fewshot``); a group task (``mmlu``)
    gets the items of its subtasks. Model-written code runs only in ``glue.eval.sandbox``."""
    specs, split, limit, batch_size = list(spec.task_specs()), spec.split, spec.limit, spec.batch_size
    for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(k, "1")
    os.environ.setdefault("HF_DATASETS_CACHE", str(cache_dir() / "hf_datasets"))  # glue's caches stay in $GLUE_CACHE
    unsafe = [s.name for s in specs if s.unsafe]
    from glue.eval.sandbox import glue_code_eval

    for name in ("lm-eval", "lm_eval", "lm_eval.models.huggingface", "lm_eval.evaluator", "lm_eval.api.task"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with glue_code_eval() if unsafe else contextlib.nullcontext():  # model-written code: only in the sandbox
        return _simple_evaluate(model, tokenizer, specs, split, limit, batch_size, bool(unsafe))


def _simple_evaluate(model, tokenizer, specs: list[TaskSpec], split: str, limit: int | None,
                     batch_size: int | str | None, unsafe: bool):
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    local = [s for s in specs if s.local]
    real = [s for s in specs if not s.local]
    tm = TaskManager(include_path=str(render_tasks(local)) if local else None, include_defaults=bool(real))
    def make_lm(model, tokenizer):
        max_len = getattr(model.config, "max_position_embeddings", None)
        bs = batch_size
        if bs is None:  # CPU: a fixed 64; CUDA: the largest that fits (lm-eval probes it)
            bs = "auto" if str(getattr(model, "device", "cpu")).startswith("cuda") else 64
        cls = prompt_aware_hflm() if getattr(model, "routes_on_prompt", False) else HFLM
        return cls(pretrained=model, tokenizer=tokenizer, batch_size=bs, trust_remote_code=False,
                   max_length=min(max_len, 4096) if max_len else None)

    if hasattr(model, "route"):  # a request-level mixture: each request to the expert its context routes to
        lm = routed_lm(model, [make_lm(m, t) for m, t in model.experts])
    else:
        lm = make_lm(model, tokenizer)
    names = {lm_eval_name(s, split): s for s in specs}
    by_shots: dict[int | None, list[str]] = {}
    for lname, s in names.items():  # simple_evaluate takes one few-shot count per call
        by_shots.setdefault(s.num_fewshot, []).append(lname)
    results, samples, subtasks = {}, {}, {}
    for shots, group in by_shots.items():
        out = lm_eval.simple_evaluate(model=lm, tasks=group, task_manager=tm, num_fewshot=shots, limit=limit,
                                      bootstrap_iters=0, log_samples=True, confirm_run_unsafe_code=unsafe,
                                      random_seed=0, numpy_random_seed=1234, torch_random_seed=1234,
                                      fewshot_random_seed=1234)
        results.update(out["results"])
        samples.update(out["samples"])
        subtasks.update(out.get("group_subtasks") or {})
    scores, n, per_item, ids = {}, {}, {}, {}
    for lname, s in names.items():
        res = results[lname]
        if s.metric not in res:
            raise RuntimeError(f"lm-eval returned no {s.metric!r} for {lname}; got {sorted(res)}")
        scores[s.name] = float(res[s.metric])
        key = s.metric.split(",")[0]
        leaves = _leaves(lname, subtasks)
        items = [(leaf, d) for leaf in leaves for d in sorted(samples.get(leaf, []), key=lambda d: d["doc_id"])]
        got = [_outcome(d.get(key)) for _, d in items]
        per_item[s.name] = got if items and None not in got else []  # a corpus-level metric has no per-item value
        ids[s.name] = [d["doc_id"] if len(leaves) == 1 else f"{leaf}/{d['doc_id']}" for leaf, d in items] \
            if per_item[s.name] else []
        n[s.name] = len(items)
    return scores, n, per_item, ids


def _outcome(v) -> bool | float | None:
    """One item's metric from lm-eval's logged sample: ``bool`` when it is 0/1 (acc, exact_match, pass@1 of one
    sample), else the ``float`` itself; None when it is no number (a corpus-level metric's per-item data)."""
    if isinstance(v, (list, tuple)) and len(v) == 1:
        v = v[0]
    if isinstance(v, str) or v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return bool(v) if v in (0.0, 1.0) else v


def _leaves(name: str, subtasks: dict[str, list[str]]) -> list[str]:
    """The tasks under ``name`` (itself when it is a task; the leaves of a group such as ``mmlu``, in order)."""
    if name not in subtasks:
        return [name]
    return [leaf for sub in subtasks[name] for leaf in _leaves(sub, subtasks)]


def prompt_aware_hflm():
    """``HFLM`` that passes ``prompt_mask`` (1 on the context tokens of each row) to the model's
    log-likelihood forward passes. Rows are matched to their request by their tokens."""
    import torch
    from lm_eval.models.huggingface import HFLM

    class PromptAwareHFLM(HFLM):
        def _loglikelihood_tokens(self, requests, *args, **kwargs):
            self._ctx_len = {}
            for _, ctx, cont in requests:
                inp = (ctx + cont)[-(self.max_length + 1):][:-1]
                self._ctx_len[tuple(inp)] = max(1, len(inp) - len(cont) + 1)
            return super()._loglikelihood_tokens(requests, *args, **kwargs)

        def _model_call(self, inps, attn_mask=None, labels=None):
            if attn_mask is not None or labels is not None:
                return super()._model_call(inps, attn_mask, labels)
            mask = torch.zeros_like(inps)
            for k, row in enumerate(inps.tolist()):
                n = len(row)
                while n > 0 and tuple(row[:n]) not in self._ctx_len:  # strip the right padding
                    if row[n - 1] != 0:
                        n = 0
                        break
                    n -= 1
                if n == 0:
                    raise RuntimeError("PromptAwareHFLM: a scored row matches no request (lm-eval internals changed?)")
                mask[k, : self._ctx_len[tuple(row[:n])]] = 1
            with torch.no_grad():
                return self.model(inps, prompt_mask=mask).logits

    return PromptAwareHFLM


def routed_lm(mixture, lms):
    """An lm-eval ``LM`` over a request-level mixture (``glue.mix.RequestMixture``): every request goes to
    the expert whose index ``mixture.route`` gives for its context (the prompt; all choices of a
    multiple-choice item share it), and is scored by that expert's own ``HFLM`` (``lms[i]``)."""
    from lm_eval.api.model import LM

    class RoutedLM(LM):
        def _split(self, requests, fn: str):
            choice = mixture.route([r.args[0] for r in requests])
            out = [None] * len(requests)
            for e, lm in enumerate(lms):
                idx = [i for i, c in enumerate(choice) if c == e]
                if idx:
                    for i, r in zip(idx, getattr(lm, fn)([requests[i] for i in idx])):
                        out[i] = r
            return out

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return self._split(requests, "loglikelihood")

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return self._split(requests, "loglikelihood_rolling")

        def generate_until(self, requests, disable_tqdm: bool = False):
            return self._split(requests, "generate_until")

    return RoutedLM()
