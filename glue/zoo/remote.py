"""Members that need their own Python code (remote code, such as CrystalChat's ``CrystalCoderLMHeadModel``)
are never loaded without an explicit opt-in: ``runnable(zoo)`` is the zoo without them, plus why each was
left out; harnesses record those reasons (the benchmarks' ``left_out-*`` records, the recipe's report).

A member needs remote code when its checkpoint says so (``glue.io.needs_remote_code``: ``auto_map`` in
``config.json``/``tokenizer_config.json``, a ``model_type`` transformers does not implement) or, when it is
not on disk, when the zoo declares an architecture transformers does not implement.

Usage::

    view, left_out = runnable(get_zoo("which16"))   # left_out == {"CrystalChat": "..."}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from glue.errors import ConfigError
from glue.zoo.spec import Member, Zoo

OPT_IN = "--trust-remote-code"


def _needs_remote_code(path: Path) -> str | None:
    try:
        from glue.io.hfconfig import needs_remote_code
    except ImportError:  # before glue.io had the shared check: auto_map only
        import json

        for name in ("config.json", "tokenizer_config.json"):
            f = path / name
            d = json.loads(f.read_text()) if f.is_file() else {}
            if isinstance(d, dict) and d.get("auto_map"):
                return f"{f}: has auto_map {sorted(d['auto_map'])}: the model needs its own Python code"
        return None
    return needs_remote_code(path)


def _implemented(architecture: str) -> bool:
    import transformers

    return hasattr(transformers, architecture)


def remote_code_reason(member: Member) -> str | None:
    """Why ``member`` needs code shipped with it (None when transformers runs it alone)."""
    if ":" in member.source and not member.source.startswith(("/", ".", "~")):
        return None  # scheme sources (surrogate:...) are glue's own models
    from glue.zoo.fetch import check

    state = check(member)
    if state.path is not None and state.path.is_dir() and (state.path / "config.json").is_file():
        return _needs_remote_code(state.path)
    if member.architecture and not _implemented(member.architecture):
        return (f"the zoo declares architecture {member.architecture}, which transformers does not implement: "
                f"the model needs its own Python code")
    return None


def runnable(zoo: Zoo, trust_remote_code: bool = False) -> tuple[Zoo, dict[str, str]]:
    """``(zoo without its remote-code members, {member: why it was left out})``; with ``trust_remote_code``
    (the user's explicit opt-in) the zoo itself and no one left out. A base that needs remote code is an
    error (every case uses the base)."""
    if trust_remote_code or zoo.kind != "real":
        return zoo, {}
    left: dict[str, str] = {}
    for m in zoo.all_models():
        why = remote_code_reason(m)
        if why:
            left[m.name] = (f"{why}; left out: glue runs no code shipped with a model without an explicit opt-in "
                            f"({OPT_IN} of pytest benchmarks)")
    if zoo.base is not None and zoo.base.name in left:
        raise ConfigError(f"zoo {zoo.name}: its base {zoo.base.name} needs remote code ({left[zoo.base.name]})")
    if not left:
        return zoo, {}
    keep = tuple(m for m in zoo.members if m.name not in left)
    if not keep:
        raise ConfigError(f"zoo {zoo.name}: every member needs remote code: " + "; ".join(left.values()))
    return dataclasses.replace(zoo, members=keep), left


def trust(zoo: Zoo) -> dict[str, str]:
    """The explicit opt-in (``--trust-remote-code``): every member of ``zoo`` that needs its own code, on
    disk, is allowed to run it when glue loads it, in this process only
    (``glue.io.hfconfig.trust_remote_code_for``). Returns ``{member: why it needs code}``."""
    from glue.io.hfconfig import trust_remote_code_for
    from glue.zoo.fetch import check

    out: dict[str, str] = {}
    for m in zoo.all_models():
        why = remote_code_reason(m)
        if why:
            path = check(m).path
            if path is not None and path.is_dir():
                trust_remote_code_for([path])
                out[m.name] = why
    return out

