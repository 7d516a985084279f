"""Zoo members by name: resolve to a directory, load, evaluate (the harness side of ``glue eval``)."""

from __future__ import annotations

from glue.eval import EvalResult, EvalSpec, evaluate_spec
from glue.io import load_model
from glue.zoo import Zoo, resolve


def evaluate_member(zoo: Zoo, member: str, spec: EvalSpec) -> EvalResult:
    """Load ``member`` of ``zoo`` on ``spec.device`` and score it with ``spec`` (tasks default to the zoo's)."""
    model, tok = load_model(resolve(zoo.member(member)), device=spec.device)
    return evaluate_spec(model, tok, spec.with_tasks(zoo.tasks))
