"""In-memory merging for search loops (CMA-ES trials, heuristic coefficient search).

``InMemoryMerger`` loads the input models once, as float32 tensors on one device, and then merges
them as often as needed, either into a fresh state dict or straight into a resident ``nn.Module``'s
parameters (``merge_into``: no disk, no new model). It checks the inputs exactly like the streaming
executor (``plan_merge``) and merges every tensor with the same call (``MergeSpec.merge``), so for
equal arguments its tensors equal the executor's bit for bit (before the output dtype cast).

Usage::

    merger = InMemoryMerger([dir_a, dir_b, dir_c], base=dir_base)
    model, tok = load_model(dir_base)                   # any model with the same tensor names
    for trial in range(100):
        w = sample()                                    # per-model weights
        merger.merge_into(model, "ties", weights=w, densities=[0.5] * 3)
        score = evaluate(model, tok, ...)

    groups = LayerGroups(num_layers=2, num_groups=2)   # the paper's layer-group variant
    merger.merge_into(model, "linear", weights=groups.coefficients(vector, n_models=3))
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from glue.errors import ConfigError
from glue.io.checkpoint import Checkpoint
from glue.merge.executor import check_device, read_input
from glue.merge.plan import Source, TensorPlan, check_finite, layer_position, plan_merge
from glue.merge.spec import Coefficients, MergeSpec, layer_of

ModelInput = str | os.PathLike | Mapping[str, Tensor]
"""A model directory (safetensors + config.json) or a state dict (name -> tensor)."""


class InMemoryMerger:
    """Resident copies of N models (and the base), in their stored dtype, and merges of them (float32 math).

    Args:
        models: model directories or state dicts (one kind or mixed).
        base: the base model (directory or state dict), for task-vector methods; without one the
            first model is the reference for tensor names and shapes.
        device: where tensors live and merges run.
        vocab_policy: ``error`` or ``truncate`` (see ``glue.merge.plan.VOCAB_POLICIES``).
        model_names: labels for messages (default: directory names, or ``#i``).

        resident: True (default) keeps the N (+1) models in memory; False keeps none: every merge reads each
            tensor of every input from its checkpoint when it merges that tensor (the OS page cache keeps what
            fits), for zoos whose candidates do not fit the device (Which16: 16 x 13.5 GB in bf16). The merges
            are the same bit for bit; the inputs are read once at construction to check them as a resident
            load does. State-dict inputs are always resident (they are in memory already).

    Memory: resident, N (+1) copies of the model in its stored dtype (bf16 for real zoos: half of float32
    copies), kept for the merger's lifetime; not resident, N (+1) copies of one tensor at a time.
    """

    def __init__(self, models: Sequence[ModelInput], base: ModelInput | None = None, *,
                 device: str | torch.device = "cpu", vocab_policy: str = "error",
                 model_names: Sequence[str] | None = None, resident: bool = True):
        if not models:
            raise ConfigError("InMemoryMerger needs at least one model")
        self.device = check_device(device)
        self.model_names = list(model_names) if model_names else [_default_label(m, i) for i, m in enumerate(models)]
        inputs = list(models) + ([base] if base is not None else [])
        labels = [f"model {n!r}" for n in self.model_names] + (["base"] if base is not None else [])
        with contextlib.ExitStack() as stack:
            opened = [stack.enter_context(Checkpoint(x)) if not isinstance(x, Mapping) else x for x in inputs]
            sources = [Source.from_checkpoint(o, lab) if isinstance(o, Checkpoint) else
                       Source.from_state_dict(o, lab) for o, lab in zip(opened, labels)]
            ref = len(models) if base is not None else 0
            self.plan: list[TensorPlan] = plan_merge(sources, ref=ref, vocab_policy=vocab_policy)
            loaded = []
            for x, o, lab in zip(inputs, opened, labels):
                if resident or isinstance(o, Mapping):
                    loaded.append({p.name: self._load(o, p, lab) for p in self.plan if p.merged})
                else:
                    for p in self.plan:  # checked once as a resident load checks them; read again per merge
                        if p.merged:
                            self._load(o, p, lab)
                    loaded.append(_OnDisk(x, {p.name: p for p in self.plan}, self.device))
        layers = [layer_of(p.name) for p in self.plan]
        self._num_layers = 1 + max((x for x in layers if x is not None), default=-1)
        self.resident = resident
        self._models = loaded[: len(models)]
        self._base = loaded[len(models)] if base is not None else None
        self._shapes = {p.name: (p.rows, *p.shape[1:]) if p.rows is not None else tuple(p.shape) for p in self.plan}

    def _load(self, src: Checkpoint | Mapping[str, Tensor], p: TensorPlan, label: str) -> Tensor:
        # kept in the stored dtype (bf16 checkpoints: half the memory of float32 copies); the methods compute
        # in float32 from it, as the streaming executor does, so the merge is the same bit for bit
        if isinstance(src, Checkpoint):
            t = read_input(src, p, self.device)
        else:
            t = src[p.name].detach()
            t = t[: p.rows] if p.rows is not None else t
            t = t.to(device=self.device, copy=True)
        check_finite(t, p.name, label)  # once, at load: merges then trust their inputs
        return t

    @property
    def names(self) -> list[str]:
        """Names of the merged (floating-point) tensors, in the reference model's order."""
        return [p.name for p in self.plan if p.merged]

    def spec(self, method: str | MergeSpec, weights: Coefficients = None, densities: Coefficients = None,
             seed: int | None = None, **params: Any) -> MergeSpec:
        """``method`` as a ``MergeSpec`` (a ``MergeSpec`` is returned as is; then pass nothing else)."""
        if isinstance(method, MergeSpec):
            if weights is not None or densities is not None or seed is not None or params:
                raise ConfigError("pass either a MergeSpec or a method name with its arguments, not both")
            return method
        return MergeSpec(method, weights=weights, densities=densities, params=params, seed=seed)

    def iter_merged(self, spec: MergeSpec) -> Iterator[tuple[str, Tensor]]:
        """Yield ``(name, merged float32 tensor)`` one tensor at a time, in the reference's order."""
        use_base = spec.reads_base and self._base is not None
        pos = {n: self._position(n) for n in self.names}
        for name in self.names:  # validate every tensor's arguments before the first merge
            spec.args_for(name, len(self._models), use_base, self.model_names, pos[name])
        with contextlib.ExitStack() as stack:
            models = [stack.enter_context(m) if isinstance(m, _OnDisk) else m for m in self._models]
            base = self._base if use_base else None
            if isinstance(base, _OnDisk):
                base = stack.enter_context(base)
            for name in self.names:
                yield name, spec.merge(name, [m[name] for m in models], base[name] if base is not None else None,
                                       self.model_names, t=pos[name])

    def _position(self, name: str) -> float:
        """Layer position ``t`` of tensor ``name`` (gradients), as the executor computes it."""
        layer = layer_of(name)
        return layer_position(layer, self._num_layers) if layer is not None else 0.0

    def merge(self, method: str | MergeSpec, *, weights: Coefficients = None, densities: Coefficients = None,
              seed: int | None = None, **params: Any) -> dict[str, Tensor]:
        """A new state dict (float32, on ``device``) of the merged tensors."""
        return dict(self.iter_merged(self.spec(method, weights, densities, seed, **params)))

    @torch.no_grad()
    def merge_into(self, model: nn.Module, method: str | MergeSpec, *, weights: Coefficients = None,
                   densities: Coefficients = None, seed: int | None = None, **params: Any) -> nn.Module:
        """Write the merge into ``model``'s parameters and buffers in place (cast to their dtype and
        device) and return ``model``. Every merged tensor name must exist in ``model.state_dict()``
        with the same shape; the model's other tensors (tied copies, buffers) are left as they are."""
        spec = self.spec(method, weights, densities, seed, **params)
        target = model.state_dict()  # detached views sharing the parameters' storage
        for p in self.plan:
            if p.merged and p.name not in target:
                raise ConfigError(f"the target model has no tensor {p.name!r} (it has {len(target)} tensors, "
                                  f"e.g. {next(iter(target), '(none)')!r})")
            if p.merged and tuple(target[p.name].shape) != self._shapes[p.name]:
                raise ConfigError(f"tensor {p.name!r}: the target model has shape {tuple(target[p.name].shape)}, "
                                  f"the merge gives {self._shapes[p.name]}")
        for name, t in self.iter_merged(spec):
            target[name].copy_(t)
        return model


class _OnDisk:
    """A checkpoint read tensor by tensor while a merge runs (``InMemoryMerger(resident=False)``):
    ``with it:`` opens the file, ``it[name]`` reads one input tensor as a resident load would."""

    def __init__(self, path: str | os.PathLike, plans: Mapping[str, TensorPlan], device: torch.device):
        self.path, self.plans, self.device = path, plans, device
        self._ck: Checkpoint | None = None

    def __enter__(self) -> _OnDisk:
        self._ck = Checkpoint(self.path).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        ck, self._ck = self._ck, None
        ck.__exit__(*exc)

    def __getitem__(self, name: str) -> Tensor:
        return read_input(self._ck, self.plans[name], self.device)


def _default_label(m: ModelInput, i: int) -> str:
    return os.fspath(m).rstrip("/").rsplit("/", 1)[-1] if not isinstance(m, Mapping) else f"#{i}"
