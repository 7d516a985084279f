"""Merge cases of the methods no selection strategy can drive but that merge any number of models with no
per-model weight (``model_stock``, ``karcher``, ``sce``): their input is every candidate, merged once with
the method's defaults, like the ``all`` strategy's uniform merge (``merge-<method>-all``).

Example::

    m = merge_every_candidate(zoo, "karcher", run_settings, tmp_path / "merged")
    m.scores, m.build_seconds
"""

from __future__ import annotations

from glue.bench.members import same_architecture
from glue.record.provenance import Measurements


def merge_every_candidate(zoo, method: str, spec, out, seed: int = 0) -> Measurements:
    """Merge the zoo's candidates (``same_architecture``; the base as the method's base when it needs one)
    with ``method`` at its default parameters into ``out`` (streaming executor), load it back and score it
    as ``spec`` (the run's ``EvalSpec``) says."""
    from glue.eval import evaluate_spec
    from glue.io import load_model
    from glue.merge import METHODS, MergeSpec, merge_checkpoints
    from glue.zoo import resolve

    names = same_architecture(zoo)
    base = resolve(zoo.base) if METHODS.get(method).needs_base else None
    merged = merge_checkpoints(MergeSpec(method, seed=seed), [resolve(zoo.member(n)) for n in names], out,
                               base=base, device=spec.device, model_names=names, progress=False)
    model, tok = load_model(out, device=spec.device)
    res = evaluate_spec(model, tok, spec.with_tasks(zoo.tasks))
    return Measurements(scores=res.scores, n=res.n, eval_seconds=res.seconds, build_seconds=merged.seconds,
                        extra={"kept": ",".join(names), "merged": "every candidate, the method's defaults"})
