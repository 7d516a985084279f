"""Zoo registry: named zoos (surrogate and real), zoo YAML files, and member resolution to a local dir."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from glue.errors import CheckpointError, ConfigError
from glue.registry import Registry
from glue.zoo.real import real_zoos
from glue.zoo.spec import Member, Zoo

__all__ = ["ZOOS", "Member", "Zoo", "get_zoo", "resolve", "zoo_names"]

ZOOS: Registry[Zoo] = Registry("zoo")
for _z in real_zoos():
    ZOOS.register(_z.name, _z)


def _ensure_surrogates() -> None:
    if "tiny" not in ZOOS:
        from glue.surrogate.zoos import surrogate_zoos

        for z in surrogate_zoos():
            ZOOS.register(z.name, z)


def zoo_names() -> list[str]:
    _ensure_surrogates()
    return ZOOS.names()


def get_zoo(name: str) -> Zoo:
    """A registered zoo by name, a re-seeded surrogate zoo (``surrogate16-seed2``, see
    ``glue.surrogate.zoos.seeded_zoo``), or a zoo YAML file (``*.yaml``/``*.yml``)."""
    if str(name).endswith((".yaml", ".yml")):
        return load_zoo_yaml(name)
    _ensure_surrogates()
    if name not in ZOOS:
        from glue.surrogate.zoos import SEEDED, seeded_zoo

        m = SEEDED.match(str(name))
        if m and m["zoo"] in ZOOS:
            ZOOS.register(name, seeded_zoo(ZOOS.get(m["zoo"]), int(m["seed"])))
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
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"zoo file {p} does not exist")
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {e}") from None
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
        if not src.startswith("surrogate:") and not Path(src).expanduser().is_absolute() and Path(p.parent, src).is_dir():
            src = str(Path(p.parent, src).resolve())  # local dirs relative to the YAML file
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
    except ValueError as e:
        raise ConfigError(f"{p}: {e}") from None


def resolve(member: Member, build: bool = True) -> Path:
    """Local directory holding ``member``'s checkpoint (safetensors + config + tokenizer).

    ``surrogate:<recipe>`` members are built on demand into ``$GLUE_CACHE`` (unless ``build`` is
    False). Local paths are returned as they are. Hub ids are looked up under ``$GLUE_MODEL_ROOT``
    (``ROOT/org/name`` or ``ROOT/name``), then in the Hugging Face cache/hub via ``snapshot_download``.
    """
    src = member.source
    if src.startswith("surrogate:"):
        from glue.surrogate.build import model_dir

        return model_dir(src.split(":", 1)[1], build=build)
    local = Path(src).expanduser()
    if local.is_dir():
        return local
    if local.is_absolute() or src.startswith("."):
        raise CheckpointError(f"member {member.name!r}: local directory {local} does not exist")
    root = os.environ.get("GLUE_MODEL_ROOT")
    if root:
        for cand in (Path(root, src), Path(root, src.split("/")[-1])):
            if cand.is_dir():
                return cand
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(src, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.py"]))
    except Exception as e:
        raise CheckpointError(
            f"member {member.name!r}: cannot get hub model {src!r} ({type(e).__name__}: {e}). "
            f"Without network, download it elsewhere and point GLUE_MODEL_ROOT at a folder holding {src}/ "
            f"or use a zoo YAML with local 'source' directories."
        ) from None
