"""Getting a real zoo's members: check them on disk, or fetch the missing ones from the Hugging Face hub.

A hub member ``org/name`` is looked up, in order, at ``$GLUE_MODEL_ROOT/org/name``,
``$GLUE_MODEL_ROOT/name`` and in the Hugging Face cache (never over the network). A local-directory
member is its directory. ``glue zoo build <real zoo>`` (the first step of ``make bench``) checks every
member first (config, safetensors headers, tokenizer, architecture); only what is missing is fetched,
into ``model_root()/org/name``:

* only weights, configs and tokenizer files (``HUB_FILES``): never code, never pickles by default;
* the file list and sizes are read first; the total is checked against the free disk before any byte
  is downloaded;
* resumable: a member being fetched holds an ``.glue-incomplete`` marker (it counts as missing), files
  already complete are skipped, and ``huggingface_hub`` resumes a partial file;
* one progress bar in bytes over the whole fetch;
* members published only as pickled ``pytorch_model*.bin`` are fetched and converted to safetensors only
  with ``convert_bin=True`` (``--convert-bin``), loading with ``torch.load(weights_only=True)``.

Without hub access (no network, ``--offline``, ``HF_HUB_OFFLINE=1``) the error lists the missing
members and where to put them, before any other work. The hub is reached through a ``HubClient``
(``HfHub`` wraps ``huggingface_hub``); tests pass a fake one.

Usage::

    states = fetch_zoo(get_zoo("which16"), HfHub(), convert_bin=False)
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from glue.errors import CheckpointError, ConfigError, GlueError
from glue.paths import cache_dir
from glue.zoo.spec import Member, Zoo

# what a hub fetch downloads: weights, configs and tokenizer files (no *.py remote code, no pickles)
HUB_FILES = ("*.safetensors", "model.safetensors.index.json", "config.json", "generation_config.json",
             "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json",
             "merges.txt", "added_tokens.json")
BIN_FILES = ("pytorch_model*.bin", "pytorch_model.bin.index.json")  # only with convert_bin
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
INCOMPLETE = ".glue-incomplete"
DISK_MARGIN = 1.05  # ask for 5% more free disk than the files take


class HubUnavailable(GlueError):
    """The hub cannot be reached (no network, offline mode, timeout)."""


def model_root() -> Path:
    """``$GLUE_MODEL_ROOT``, else ``$GLUE_CACHE/models``: where hub members live as ``ROOT/org/name``."""
    root = os.environ.get("GLUE_MODEL_ROOT")
    return Path(root).expanduser() if root else cache_dir() / "models"


def is_hub_id(source: str) -> bool:
    """``org/name`` (not a local path, not ``surrogate:``)."""
    if ":" in source or source.startswith(("/", ".", "~")) or Path(source).expanduser().exists():
        return False  # a scheme (surrogate:...) or a local path
    parts = source.split("/")
    return len(parts) == 2 and all(parts)


def target_dir(member: Member) -> Path:
    """Where a hub member is fetched to: ``model_root()/org/name``."""
    return model_root() / member.source


def candidates(member: Member) -> list[Path]:
    """Directories that may hold ``member``, in lookup order (the Hugging Face cache comes after these)."""
    if not is_hub_id(member.source):
        return [Path(member.source).expanduser()]
    root = model_root()
    return [root / member.source, root / member.source.split("/")[-1]]


def hf_cache_dir(repo: str) -> Path | None:
    """The cached snapshot of ``repo`` in the Hugging Face cache holding a config, or None. No network."""
    try:
        from huggingface_hub import snapshot_download

        p = Path(snapshot_download(repo, local_files_only=True, allow_patterns=list(HUB_FILES)))
    except Exception:  # not cached (LocalEntryNotFoundError) or no cache at all
        return None
    return p if (p / "config.json").is_file() else None


def problem(member: Member, path: Path) -> str | None:
    """Why ``path`` is not a usable checkpoint of ``member`` (None when it is): an interrupted fetch,
    a missing or unreadable config, another architecture, no (or corrupt) safetensors weights, pickled
    weights only, no tokenizer."""
    from glue.io.checkpoint import Checkpoint, read_config

    if (path / INCOMPLETE).exists():
        return f"incomplete fetch ({INCOMPLETE} present): run `glue zoo build` again to resume"
    try:
        cfg = read_config(path)
    except CheckpointError as e:
        return str(e)
    archs = cfg.get("architectures") or []
    if member.architecture and archs and archs[0] != member.architecture:
        return f"config.json says {archs[0]}, the zoo says {member.architecture}"
    if not any(path.glob("*.safetensors")) and any(path.glob("pytorch_model*.bin")):
        return "pickled pytorch_model*.bin weights only: convert them with `glue zoo build --convert-bin`"
    try:
        Checkpoint(path).close()
    except CheckpointError as e:
        return str(e)
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        return f"no tokenizer ({', '.join(TOKENIZER_FILES)})"
    return None


@dataclass
class MemberState:
    """Where a member is and whether it is usable: ``ok``, ``missing`` or ``bad`` (with ``detail``)."""

    member: Member
    status: str
    path: Path | None = None
    detail: str = ""


def check(member: Member, hf_cache: bool = True) -> MemberState:
    """Look ``member`` up on disk (``candidates``, then the Hugging Face cache) and check what is found."""
    found = [p for p in candidates(member) if p.is_dir()]
    if not found and hf_cache and is_hub_id(member.source):
        cached = hf_cache_dir(member.source)
        found = [cached] if cached else []
    if not found:
        where = candidates(member)[0]
        return MemberState(member, "missing", where, "not found")
    why = problem(member, found[0])
    return MemberState(member, "bad" if why else "ok", found[0], why or "")


def check_zoo(zoo: Zoo) -> list[MemberState]:
    """``check`` of every model of ``zoo`` (base first); ``scheme:ref`` members (surrogate) are skipped."""
    return [check(m) for m in zoo.all_models() if not _has_scheme(m.source)]


def _has_scheme(source: str) -> bool:
    return ":" in source and not source.startswith(("/", ".", "~"))


# ---- the hub -----------------------------------------------------------------------------------------

class HubClient(Protocol):
    """What the fetch needs from a hub: a repository's files with their sizes, and one file's download."""

    def files(self, repo: str) -> dict[str, int | None]:
        """``{path: size in bytes}`` of the repository's files. Raises ``HubUnavailable`` when the hub
        cannot be reached, ``CheckpointError`` for a missing or gated repository."""

    def download(self, repo: str, filename: str, dest: Path) -> None:
        """Download ``filename`` to ``dest/filename`` (resuming a partial download)."""


class HfHub:
    """``HubClient`` over ``huggingface_hub`` (token from ``HF_TOKEN`` or ``hf auth login``)."""

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout

    def files(self, repo: str) -> dict[str, int | None]:
        from huggingface_hub import HfApi
        from huggingface_hub import errors as E

        try:
            info = HfApi().model_info(repo, files_metadata=True, timeout=self.timeout)
        except E.GatedRepoError:
            raise CheckpointError(f"{repo} is gated: accept its licence on https://huggingface.co/{repo} and log in "
                                  f"(`hf auth login` or HF_TOKEN)") from None
        except (E.RepositoryNotFoundError, E.RevisionNotFoundError):
            raise CheckpointError(f"{repo} does not exist on the hub (or is private: log in)") from None
        except Exception as e:  # offline mode, DNS, connection refused, timeout, proxy errors
            raise HubUnavailable(f"the Hugging Face hub cannot be reached ({type(e).__name__}: {e})") from None
        return {s.rfilename: s.size for s in info.siblings or []}

    def download(self, repo: str, filename: str, dest: Path) -> None:
        from huggingface_hub import hf_hub_download

        hf_hub_download(repo, filename, local_dir=dest, etag_timeout=self.timeout)


def hub_allowed() -> bool:
    """False when the user turned the hub off (``HF_HUB_OFFLINE=1`` in the environment glue started with)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("1", "true", "yes", "on")


@dataclass
class MemberPlan:
    """What to download for one member: ``files`` (name -> size) into ``dest``; ``convert`` for .bin members."""

    member: Member
    dest: Path
    files: dict[str, int | None]
    convert: bool = False
    todo: dict[str, int | None] = field(default_factory=dict)  # files not yet complete in dest

    @property
    def todo_bytes(self) -> int:
        return sum(s or 0 for s in self.todo.values())


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return "/" not in name and any(fnmatch.fnmatch(name, p) for p in patterns)


CODE_FILES = ("*.py",)  # a model's own code: fetched only with the explicit opt-in (--trust-remote-code)


def plan_member(member: Member, files: dict[str, int | None], convert_bin: bool,
                include_code: bool = False) -> MemberPlan:
    """The files of ``member`` to fetch, given the hub's listing ``files`` (its ``*.py`` files only with
    ``include_code``, the user's opt-in to run them)."""
    keep = {f: s for f, s in files.items() if _matches(f, HUB_FILES + (CODE_FILES if include_code else ()))}
    if "config.json" not in keep:
        raise CheckpointError(f"member {member.name!r}: {member.source} has no config.json on the hub")
    convert = False
    if not any(f.endswith(".safetensors") for f in keep):
        bins = {f: s for f, s in files.items() if _matches(f, BIN_FILES)}
        if not bins:
            raise CheckpointError(f"member {member.name!r}: {member.source} has neither safetensors nor "
                                  f"pytorch_model*.bin weights on the hub")
        if not convert_bin:
            raise CheckpointError(f"member {member.name!r}: {member.source} publishes only pickled pytorch_model*.bin "
                                  f"weights; pass --convert-bin to fetch and convert them to safetensors "
                                  f"(loaded with torch.load(weights_only=True))")
        keep.update(bins)
        convert = True
    dest = target_dir(member)
    todo = {f: s for f, s in keep.items() if not _complete(dest / f, s)}
    return MemberPlan(member, dest, keep, convert, todo)


def _complete(path: Path, size: int | None) -> bool:
    return path.is_file() and (size is None or path.stat().st_size == size)


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem that will hold ``path`` (its nearest existing ancestor)."""
    p = Path(path).absolute()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def missing_message(zoo: Zoo, bad: list[MemberState], reason: str) -> str:
    n = len([m for m in zoo.all_models() if not _has_scheme(m.source)])
    width = max(len(s.member.name) for s in bad)
    swidth = max(len(s.member.source) for s in bad)
    lines = [f"zoo {zoo.name}: {len(bad)} of {n} models are not available locally and cannot be fetched: {reason}."]
    for s in bad:
        lines.append(f"  {s.member.name:{width}s}  {s.member.source:{swidth}s}  {s.detail} (looked in {s.path})")
    env = os.environ.get("GLUE_MODEL_ROOT")
    lines += [
        f"Provide each as a directory with config.json, *.safetensors and the tokenizer files at "
        f"$GLUE_MODEL_ROOT/<org>/<name> ($GLUE_MODEL_ROOT is {env!r}" + ("" if env else f", default {model_root()}")
        + "), for example, on a machine with hub access:",
        f"  hf download {bad[0].member.source} --include '*.safetensors' '*.json' 'tokenizer.model' "
        f"--local-dir $GLUE_MODEL_ROOT/{bad[0].member.source}",
        f"  (or `GLUE_MODEL_ROOT=DIR glue zoo build {zoo.name}` there, then copy DIR here),",
        "or use a zoo YAML whose members' 'source' are local directories.",
    ]
    return "\n".join(lines)


def fetch_zoo(zoo: Zoo, client: HubClient | None = None, *, convert_bin: bool = False, download: bool = True,
              progress: bool = True, log: Callable[[str], None] = print,
              include_code: bool = False) -> list[MemberState]:
    """Make every model of ``zoo`` available locally; return the final ``check`` of each.

    Args:
        client: the hub (default ``HfHub()``); not used when nothing is missing.
        convert_bin: fetch and convert members published only as pickled .bin weights.
        include_code: also fetch the members' ``*.py`` files (the user's ``--trust-remote-code`` opt-in).
        download: False: only check (the error lists what is missing).
        log: where the one-line summaries go (the CLI passes a stderr printer).

    Raises:
        CheckpointError: members missing and not fetchable (the message lists them and how to provide
            them), a local directory that is not a usable checkpoint, too little free disk.
    """
    states = check_zoo(zoo)
    bad = [s for s in states if s.status != "ok"]
    if not bad:
        return states
    local_bad = [s for s in bad if not is_hub_id(s.member.source)]
    if local_bad:  # nothing to fetch for these: their directory is the member
        raise CheckpointError("\n".join(f"member {s.member.name!r}: {s.path}: {s.detail}" for s in local_bad))
    broken = [s for s in bad if s.status == "bad" and s.path != target_dir(s.member)]
    if broken:  # found at another place (ROOT/name, HF cache) but unusable: fetching elsewhere would hide it
        raise CheckpointError("\n".join(f"member {s.member.name!r}: {s.path}: {s.detail}; fix or remove it"
                                        for s in broken))
    if not download or not hub_allowed():
        why = "downloads are off (--offline)" if not download else "HF_HUB_OFFLINE is set"
        raise CheckpointError(missing_message(zoo, bad, why))
    client = client or HfHub()
    plans = []
    for s in bad:
        try:
            plans.append(plan_member(s.member, client.files(s.member.source), convert_bin, include_code))
        except HubUnavailable as e:
            raise CheckpointError(missing_message(zoo, bad, str(e))) from None
    need = sum(p.todo_bytes for p in plans) + sum(
        max((sz or 0) for f, sz in p.files.items() if f.endswith(".bin")) for p in plans if p.convert)
    free = free_bytes(model_root())
    if need * DISK_MARGIN > free:
        raise CheckpointError(f"zoo {zoo.name}: fetching {len(plans)} models needs {need / 1e9:.1f} GB "
                              f"(+{DISK_MARGIN - 1:.0%} margin) but {model_root()} has {free / 1e9:.1f} GB free; "
                              f"point GLUE_MODEL_ROOT at a larger disk")
    log(f"zoo {zoo.name}: fetching {len(plans)} models, {need / 1e9:.2f} GB into {model_root()}")
    _download(plans, client, progress)
    final = check_zoo(zoo)
    still = [s for s in final if s.status != "ok"]
    if still:
        raise CheckpointError("\n".join(f"member {s.member.name!r}: {s.path}: {s.detail}" for s in still))
    return final


def _download(plans: list[MemberPlan], client: HubClient, progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=sum(p.todo_bytes for p in plans), unit="B", unit_scale=True, unit_divisor=1024,
               desc="fetching", disable=not progress, dynamic_ncols=True)
    try:
        for p in plans:
            p.dest.mkdir(parents=True, exist_ok=True)
            (p.dest / INCOMPLETE).write_text(json.dumps({"source": p.member.source, "started": time.time()}))
            for f, size in p.todo.items():
                bar.set_postfix_str(f"{p.member.name}/{f}")
                client.download(p.member.source, f, p.dest)
                if not _complete(p.dest / f, size):
                    raise CheckpointError(f"member {p.member.name!r}: {p.dest / f} is not the size the hub lists "
                                          f"({size} bytes); run again to resume")
                bar.update(size or 0)
            if p.convert:
                convert_bin_dir(p.dest)
            shutil.rmtree(p.dest / ".cache", ignore_errors=True)  # huggingface_hub's resume metadata
            (p.dest / INCOMPLETE).unlink()
    finally:
        bar.close()


def convert_bin_dir(path: Path) -> list[str]:
    """Convert ``pytorch_model*.bin`` in ``path`` to safetensors shards of the same names (plus an index when
    sharded), then delete the .bin files. Loads with ``torch.load(weights_only=True)``: a pickle that would
    run code is refused. Tensors sharing storage (tied weights) are stored as separate copies."""
    import torch
    from safetensors.torch import save_file

    bins = sorted(path.glob("pytorch_model*.bin"))
    if not bins:
        raise CheckpointError(f"no pytorch_model*.bin in {path}")
    weight_map, written = {}, []
    for b in bins:
        try:
            sd = torch.load(b, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"{b}: refused or unreadable as plain tensors (weights_only=True): "
                                  f"{type(e).__name__}: {e}") from None
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"{b}: not a state dict of tensors")
        seen: set[int] = set()
        out = {}
        for k, v in sd.items():
            ptr = v.untyped_storage().data_ptr()
            out[k] = v.clone().contiguous() if ptr in seen or not v.is_contiguous() else v
            seen.add(ptr)
        name = b.name.replace("pytorch_model", "model").replace(".bin", ".safetensors")
        tmp = path / f".{name}.tmp"
        save_file(out, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, path / name)
        weight_map.update({k: name for k in out})
        written.append(name)
    if len(written) > 1:
        total = sum((path / n).stat().st_size for n in written)
        (path / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2, sort_keys=True))
    for b in bins:
        b.unlink()
    (path / "pytorch_model.bin.index.json").unlink(missing_ok=True)
    return written


def require_local(zoo: Zoo) -> None:
    """Raise ``ConfigError`` listing the members of a real zoo that are not usable on disk (no network)."""
    bad = [s for s in check_zoo(zoo) if s.status != "ok"]
    if bad:
        raise ConfigError(missing_message(zoo, bad, f"run `glue zoo build {zoo.name}` first (it fetches them "
                                                    f"from the hub where one is reachable)"))
