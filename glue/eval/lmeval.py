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
With ``mc_scoring: prompt_once`` or ``prefix_cache: shared`` any other model runs under ``glue_hflm``'s subclass: lm-eval's
requests, metrics and aggregation, with log-likelihoods that read each context once
(``glue.eval.native.continuation_logprobs``) and generation batches that read their shared prefix once.

Real tasks: ``test`` is lm-eval's own task (``arc_challenge``...); ``search`` is a rendered task
``glue_<task>_search`` on documents disjoint from lm-eval's test documents (``TaskSpec.search_source``, the
rule per task in ``glue.eval.tasks``): ``include:`` of lm-eval's own YAML (absolute path into the installed
lm-eval, so prompt, metric and filters are lm-eval's), a new ``task`` name, ``tag: []`` (the task must not join
lm-eval's tags: MMLU's groups are built from them), ``test_split`` set to the search split and, for a first-N
subset, ``process_docs`` keeping the first N documents while the few-shot examples come from the rest
(``fewshot_config.process_docs``; functions in ``glue_search_docs.py`` next to the YAMLs). A group (``mmlu``)
becomes a group ``glue_mmlu_search`` of one such task per leaf, aggregated as lm-eval's group is. A task
without a search split (HumanEval) is refused before any work.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

from glue.errors import ConfigError
from glue.eval.tasks import LM_EVAL_DIRS, TaskSpec
from glue.paths import cache_dir

SEARCH_DOCS = "glue_search_docs"  # the module of the rendered search tasks' process_docs functions


def lm_eval_name(spec: TaskSpec, split: str) -> str:
    """The lm-eval task (or group) that scores ``spec``'s ``split``: local tasks ``<lm_eval_task>_<split>``; real
    tasks: lm-eval's own task for ``test``, the rendered ``glue_<name>_search`` for ``search`` (``ConfigError``
    for a real task without a search split, ``TaskSpec.search_source``)."""
    if spec.local:
        return f"{spec.lm_eval_task}_{split}"
    if split == "test":
        return spec.lm_eval_task
    if split == "search":
        spec.search_source()  # refuses a task with no non-test data
        return f"glue_{spec.name}_search"
    raise ConfigError(f"task {spec.name!r}: split {split!r}; allowed: test, search")


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


def lm_eval_tasks_dir() -> Path:
    """``lm_eval/tasks`` of the installed lm-eval."""
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks"


def _load(path: Path) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=False, recursive=True)


def lm_eval_yaml_index(lm_eval_task: str) -> tuple[dict[str, Path], dict[str, list[str]], dict[str, dict]]:
    """``(tasks, tags, groups)`` of the lm-eval folder holding ``lm_eval_task`` (``LM_EVAL_DIRS``): task name ->
    its YAML, tag -> its task names (sorted), group name -> its YAML's config."""
    if lm_eval_task not in LM_EVAL_DIRS:
        raise ConfigError(f"lm-eval task {lm_eval_task!r}: its folder under lm_eval/tasks is not known "
                          f"(glue.eval.tasks.LM_EVAL_DIRS has {', '.join(LM_EVAL_DIRS)})")
    tasks: dict[str, Path] = {}
    tags: dict[str, list[str]] = {}
    groups: dict[str, dict] = {}
    for f in sorted((lm_eval_tasks_dir() / LM_EVAL_DIRS[lm_eval_task]).glob("*.yaml")):
        cfg = _load(f)
        if "group" in cfg:
            groups[cfg["group"]] = cfg
        elif isinstance(cfg.get("task"), str):
            tasks[cfg["task"]] = f
            tag = cfg.get("tag") or []
            for t in [tag] if isinstance(tag, str) else tag:
                tags.setdefault(t, []).append(cfg["task"])
    return tasks, {k: sorted(v) for k, v in tags.items()}, groups


def lm_eval_leaves(lm_eval_task: str) -> list[tuple[str, Path]]:
    """``[(task name, YAML path), ...]``: ``lm_eval_task`` itself, or a group's leaf tasks in the group's order
    (a tag in a group's task list: its tasks, sorted by name)."""
    tasks, tags, groups = lm_eval_yaml_index(lm_eval_task)

    def walk(name: str) -> list[str]:
        if name in groups:
            return [leaf for sub in groups[name]["task"] for leaf in walk(sub)]
        if name in tags:
            return [leaf for sub in tags[name] for leaf in walk(sub)]
        if name in tasks:
            return [name]
        raise ConfigError(f"lm-eval task {name!r} is not defined in lm_eval/tasks/{LM_EVAL_DIRS[lm_eval_task]}")

    return [(leaf, tasks[leaf]) for leaf in walk(lm_eval_task)]


def search_yamls(spec: TaskSpec) -> dict[str, str]:
    """``{file name: text}``: the lm-eval YAMLs (and the ``process_docs`` module) of real task ``spec``'s
    ``search`` split (module docstring)."""
    split, count = spec.search_source()
    name = lm_eval_name(spec, "search")
    leaves = lm_eval_leaves(spec.lm_eval_task)
    out: dict[str, str] = {}
    fn = f"first_{count}" if count else ""
    for leaf, path in leaves:
        cfg = _load(path)
        scored = cfg.get("test_split") or cfg.get("validation_split")
        if split == scored:
            raise ConfigError(f"task {spec.name!r}: search_split {split!r} is the split lm-eval scores as the test "
                              f"of {leaf} ({path})")
        task = name if len(leaves) == 1 and leaf == spec.lm_eval_task else f"{name}_{leaf}"
        text = f"include: \"{path}\"\ntask: {task}\ntag: []\ntest_split: {split}\n"
        if count:
            if cfg.get("process_docs") or cfg.get("fewshot_config"):
                raise ConfigError(f"task {spec.name!r}: {path} has its own process_docs/fewshot_config; glue cannot "
                                  f"take a first-{count} search subset of it (set search_count 0)")
            text += f"process_docs: !function {SEARCH_DOCS}.{fn}\n"
            if (cfg.get("fewshot_split") or cfg.get("training_split")) in (split, None):  # demos from the rest
                text += (f"fewshot_split: {split}\n"
                         f"fewshot_config: {{process_docs: !function {SEARCH_DOCS}.{fn}_rest}}\n")
            else:  # demos from another split: whole, as for the test (process_docs would cut them too)
                text += "fewshot_config: {process_docs: null}\n"
        out[f"{task}.yaml"] = text
    if len(leaves) > 1 or leaves[0][0] != spec.lm_eval_task:  # a group: one of its own, aggregated as lm-eval's
        group = lm_eval_yaml_index(spec.lm_eval_task)[2][spec.lm_eval_task]
        agg = "".join(f"  - {{metric: {a['metric']}, weight_by_size: {str(bool(a.get('weight_by_size'))).lower()}}}\n"
                      for a in group.get("aggregate_metric_list") or [])
        out[f"{name}.yaml"] = (f"group: {name}\ntask:\n" + "".join(f"  - {name}_{leaf}\n" for leaf, _ in leaves)
                               + (f"aggregate_metric_list:\n{agg}" if agg else "") + "metadata: {version: 1.0}\n")
    if count:
        out[f"{SEARCH_DOCS}.py"] = _search_docs_module({count})
    return out


def _search_docs_module(counts) -> str:
    """The ``process_docs`` functions of first-N search subsets: ``first_N`` (documents ``[0, N)``, the search
    items) and ``first_N_rest`` (``[N, end)``, the few-shot pool), for each N of ``counts``."""
    return '"""process_docs of glue\'s search subsets (rendered by glue.eval.lmeval)."""\n' + "".join(
        f"\n\ndef first_{n}(docs):\n    return docs.select(range(min({n}, len(docs))))\n"
        f"\n\ndef first_{n}_rest(docs):\n    return docs.select(range(min({n}, len(docs)), len(docs)))\n"
        for n in sorted(counts))


def render_tasks(specs: list[TaskSpec], splits: tuple[str, ...] = ("test", "search")) -> Path:
    """Write the lm-eval YAMLs of the local ``specs`` (``splits``), and of real ``specs``' search split when
    ``splits`` holds ``search``, into a content-addressed cache folder."""
    texts = {f"{lm_eval_name(s, sp)}.yaml": _yaml(s, sp) for s in specs if s.local for sp in splits}
    real = [s for s in specs if not s.local] if "search" in splits else []
    for s in real:
        texts |= search_yamls(s)
    counts = {s.search_source()[1] for s in real} - {0}
    if counts:
        texts[f"{SEARCH_DOCS}.py"] = _search_docs_module(counts)
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
    for s in specs:
        lm_eval_name(s, split)  # a real task without a search split is refused here, before any work
    for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(k, "1")
    os.environ.setdefault("HF_DATASETS_CACHE", str(cache_dir() / "hf_datasets"))  # glue's caches stay in $GLUE_CACHE
    unsafe = [s.name for s in specs if s.unsafe]
    from glue.eval.sandbox import glue_code_eval

    for name in ("lm-eval", "lm_eval", "lm_eval.models.huggingface", "lm_eval.evaluator", "lm_eval.api.task"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with glue_code_eval() if unsafe else contextlib.nullcontext():  # model-written code: only in the sandbox
        return _simple_evaluate(model, tokenizer, specs, split, limit, batch_size, bool(unsafe), spec.mc_scoring,
                                spec.prefix_cache)


def _simple_evaluate(model, tokenizer, specs: list[TaskSpec], split: str, limit: int | None,
                     batch_size: int | str | None, unsafe: bool, mc_scoring: str = "rows",
                     prefix_cache: str = "none"):
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    local = [s for s in specs if s.local]
    real = [s for s in specs if not s.local]
    rendered = local + (real if split == "search" else [])
    tm = TaskManager(include_path=str(render_tasks(rendered)) if rendered else None, include_defaults=bool(real))
    def make_lm(model, tokenizer):
        max_len = getattr(model.config, "max_position_embeddings", None)
        bs = batch_size
        if bs is None:  # CPU: a fixed 64; CUDA: the largest that fits (lm-eval probes it)
            bs = "auto" if str(getattr(model, "device", "cpu")).startswith("cuda") else 64
        if getattr(model, "routes_on_prompt", False):
            cls = prompt_aware_hflm()
        else:
            cls = glue_hflm(mc_scoring, prefix_cache)
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


def glue_hflm(mc_scoring: str = "rows", prefix_cache: str = "none"):
    """``HFLM``, or a subclass whose forward passes are glue's (``--mc-scoring prompt_once``, ``--prefix-cache shared``):
    lm-eval still builds the requests (its own ``context_enc`` / ``continuation_enc``, its batches of generation
    contexts, stop sequences and ``max_gen_toks``), the metrics and the aggregation.

    - ``prompt_once``: log-likelihoods read each context once (``glue.eval.native.continuation_logprobs``; with
      ``prefix_cache`` shared, a chunk's contexts also share their common prefix). A request set with a row longer
      than ``max_length + 1`` (which lm-eval would truncate from the left) goes to HFLM's own
      ``_loglikelihood_tokens`` whole.
    - ``prefix_cache`` shared: each generation batch (lm-eval's left-padded ``context``) reads its shared prefix once
      (``glue.eval.native.prefilled``: ``[prefix | padding | own tokens]``, as wide as lm-eval's batch, so
      lm-eval cuts the continuations where it would) before HFLM's own ``_model_generate``."""
    import torch
    from lm_eval.models.huggingface import HFLM

    from glue.eval.native import _pad_id, continuation_logprobs, prefilled

    once, share = mc_scoring == "prompt_once", prefix_cache == "shared"
    if not once and not share:
        return HFLM

    class GlueHFLM(HFLM):
        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
            if (not once or self.backend != "causal"
                    or any(len(c) + len(t) > self.max_length + 1 for _, c, t in requests)):
                return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
            bs = self.batch_size if isinstance(self.batch_size, int) else 64
            res = continuation_logprobs(self.model, [(c, t) for _, c, t in requests], _pad_id(self.tokenizer), bs,
                                        self.softmax_dtype, share_prefix=share)
            for (req, _, _), ans in zip(requests, res):
                if req is not None:
                    self.cache_hook.add_partial("loglikelihood", req, ans)
            return res

        def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs):
            mask = generation_kwargs.get("attention_mask")
            if not share or self.backend != "causal" or mask is None:
                return super()._model_generate(context, max_length, stop, **generation_kwargs)
            seqs = [row[m.bool()].tolist() for row, m in zip(context.cpu(), mask.cpu())]
            with torch.no_grad():
                ids, mask2, cache, _ = prefilled(self.model, seqs, _pad_id(self.tokenizer), True)
            if cache is None or ids.shape != context.shape:
                return super()._model_generate(context, max_length, stop, **generation_kwargs)
            generation_kwargs |= {"attention_mask": mask2.to(context.device), "cache": cache}
            return super()._model_generate(ids.to(context.device), max_length, stop, **generation_kwargs)

    return GlueHFLM


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
