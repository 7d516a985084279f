"""Zoo registry: named zoos (real ones here, surrogate ones registered by the surrogate plugin), zoo YAML
files, and member resolution to a local directory.

A member's ``source`` is a local directory, a hub id, or ``<scheme>:<ref>`` for a scheme registered in
``SOURCES`` (``surrogate:<recipe>`` by the surrogate plugin): ``SOURCES.get(scheme)(ref, build)``
returns the directory, building the model only when ``build`` is True.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from glue.errors import CheckpointError, ConfigError
from glue.registry import Registry
from glue.zoo.real import real_zoos
from glue.zoo.spec import ROLES, Member, Zoo

__all__ = ["SOURCES", "ZOOS", "ZOO_FACTORIES", "Member", "Zoo", "get_zoo", "member_dir", "resolve", "zoo_names"]

ZOOS: Registry[Zoo] = Registry("zoo", plugins=True)
for _z in real_zoos():
    ZOOS.register(_z.name, _z)

ZOO_FACTORIES: Registry[Callable[[str], Zoo | None]] = Registry("zoo factory", plugins=True)
"""``kind -> fn(name) -> Zoo or None``: zoos made on demand from their name (the surrogate plugin's
re-seeded zoos, ``surrogate16-seed2``); ``get_zoo`` asks them for a name that is not registered."""

SOURCES: Registry[Callable[[str, bool], Path]] = Registry("model source scheme", plugins=True)
"""``scheme -> fn(ref, build) -> directory`` for member sources written ``scheme:ref``."""


def zoo_names() -> list[str]:
    return ZOOS.names()


def get_zoo(name: str) -> Zoo:
    """A registered zoo by name, a re-seeded surrogate zoo (``surrogate16-seed2``, see
    ``glue.surrogate.zoos.seeded_zoo``), or a zoo YAML file (``*.yaml``/``*.yml``)."""
    if str(name).endswith((".yaml", ".yml")):
        return load_zoo_yaml(name)
    if name not in ZOOS:
        for _, make in ZOO_FACTORIES.items():
            z = make(str(name))
            if z is not None:
                ZOOS.register(z.name, z)
                break
    return ZOOS.get(name)


_MEMBER_FIELDS = {"name", "source", "family", "architecture", "role", "note"}


def load_zoo_yaml(path: str | os.PathLike) -> Zoo:
    """Read a user zoo::

        name: myzoo
        tasks: [arc_challenge, gsm8k]
        base: {name: base, source: meta-llama/Llama-2-7b-hf, family: llama2}
        members:
          - {name: a, source: /models/a, family: llama2}
    """
    from glue.yamlfile import read_yaml

    p = Path(path)
    d = read_yaml(p, "zoo file") or {}
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: top level must be a mapping with fields name, members, tasks, base")
    unknown = set(d) - {"name", "members", "tasks", "base", "description"}
    if unknown:
        raise ConfigError(f"{p}: unknown field(s) {sorted(unknown)}; allowed: name, members, tasks, base, description")

    def member(m: object, where: str) -> Member:
        if not isinstance(m, dict) or "name" not in m or "source" not in m:
            raise ConfigError(f"{p}: {where} must be a mapping with at least 'name' and 'source'")
        bad = set(m) - _MEMBER_FIELDS
        if bad:
            raise ConfigError(f"{p}: {where}: unknown field(s) {sorted(bad)}; allowed: {sorted(_MEMBER_FIELDS)}")
        src = str(m["source"])
        if not _scheme(src) and not Path(src).expanduser().is_absolute() and Path(p.parent, src).is_dir():
            src = str(Path(p.parent, src).resolve())  # local dirs relative to the YAML file
        role = m.get("role", "finetune")
        if role not in ROLES:
            raise ConfigError(f"{p}: {where}.role is {role!r}; allowed: {', '.join(ROLES)}")
        arch = m.get("architecture", "LlamaForCausalLM")
        if not isinstance(arch, str) or not arch.isidentifier():
            raise ConfigError(f"{p}: {where}.architecture is {arch!r}: expected a transformers class name such as "
                              f"LlamaForCausalLM (config.json's architectures[0])")
        return Member(**{**m, "source": src, "family": str(m.get("family", "?"))})

    members = d.get("members")
    if not isinstance(members, list) or not members:
        raise ConfigError(f"{p}: 'members' must be a non-empty list")
    tasks = d.get("tasks") or []
    if not isinstance(tasks, list):
        raise ConfigError(f"{p}: 'tasks' must be a list of task names")
    try:
        return Zoo(
            name=str(d.get("name", p.stem)),
            kind="real",
            members=tuple(member(m, f"members[{i}]") for i, m in enumerate(members)),
            tasks=tuple(tasks),
            base=member(d["base"], "base") if d.get("base") else None,
            description=str(d.get("description", "")),
        )
    except ValueError as e:  # ConfigError included; name the file once
        raise ConfigError(str(e) if str(e).startswith(f"{p}:") else f"{p}: {e}") from None


def member_dir(zoo: str, member: str, build: bool = False) -> Path:
    """Directory of ``member`` of the zoo named ``zoo`` (what merge configs with ``zoo:`` are read with)."""
    return resolve(get_zoo(zoo).member(member), build=build)


def resolve(member: Member, build: bool = False) -> Path:
    """Local directory holding ``member``'s checkpoint (safetensors + config + tokenizer).

    ``scheme:ref`` members go to the scheme's resolver in ``SOURCES``. Building is an explicit step:
    a ``surrogate:<recipe>`` member that is not in ``$GLUE_CACHE`` yet raises ``CheckpointError``
    (run ``glue zoo build ZOO``) unless ``build`` is True. Local paths are returned as they are. Hub
    ids are looked up under ``$GLUE_MODEL_ROOT`` (``ROOT/org/name`` or ``ROOT/name``), then in the
    Hugging Face cache, and checked (``glue.zoo.fetch.check``); nothing is downloaded here: fetching
    is explicit too (``glue zoo build`` of a real zoo).
    """
    src = member.source
    scheme = _scheme(src)
    if scheme:
        return SOURCES.get(scheme)(src.split(":", 1)[1], build)
    local = Path(src).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise CheckpointError(f"member {member.name!r}: {local} is not a directory (a model is a directory holding "
                              f"config.json and safetensors)")
    if local.is_absolute() or src.startswith("."):
        raise CheckpointError(f"member {member.name!r}: local directory {local} does not exist")
    from glue.zoo.fetch import check

    state = check(member)  # $GLUE_MODEL_ROOT/org/name, ROOT/name, the Hugging Face cache; never the network
    if state.status == "ok":
        return state.path
    raise CheckpointError(f"member {member.name!r} ({src}): {state.detail} (looked in {state.path}); "
                          f"`glue zoo build` fetches a real zoo's members, or put them under "
                          f"$GLUE_MODEL_ROOT/{src}")


def _scheme(source: str) -> str | None:
    """``surrogate`` for ``surrogate:ft_add``; None for paths and hub ids (no registered scheme)."""
    head = source.split(":", 1)[0] if ":" in source else None
    return head if head and head in SOURCES else None
