"""LoRA adapters as merge inputs (mergekit's ``model+lora``): the adapter is merged into its model
with peft (``PeftModel.from_pretrained(...).merge_and_unload()``), once, into
``$GLUE_CACHE/lora/<digest>``; the merge then reads that checkpoint like any other.

The digest covers both directories' file names, sizes and modification times, so an edited model
or adapter is merged again. The merged model is saved in the dtype ``from_pretrained`` loads it in
(transformers' default), as mergekit does without ``--lora-merge-dtype``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from glue.errors import ConfigError
from glue.io.checkpoint import atomic_dir
from glue.paths import cache_dir

ADAPTER_FILE = "adapter_config.json"


def split(ref: str) -> tuple[Path, Path] | None:
    """``(model, adapter)`` directories of a ``model+lora`` reference, or None when ``ref`` is not one."""
    if "+" not in ref:
        return None
    model, _, lora = ref.rpartition("+")
    m, a = Path(model).expanduser(), Path(lora).expanduser()
    return (m, a) if m.is_dir() and a.is_dir() else None


def _digest(*dirs: Path) -> str:
    h = hashlib.blake2b(digest_size=12)
    for d in dirs:
        h.update(str(d.resolve()).encode())
        for f in sorted(d.iterdir()):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()


def merged(model: Path, adapter: Path) -> Path:
    """The directory of ``model`` with ``adapter`` merged in (built on first use)."""
    if not (adapter / ADAPTER_FILE).is_file():
        raise ConfigError(f"{adapter} is not a LoRA adapter directory (no {ADAPTER_FILE})")
    out = cache_dir() / "lora" / _digest(model, adapter)
    if (out / "config.json").is_file():
        return out
    from peft import PeftModel

    from glue.io.hfconfig import from_pretrained

    base = from_pretrained("model", model, what="LoRA base model")  # never code shipped with the model
    with atomic_dir(out, overwrite=True, kind="lora", checked=False) as tmp:  # inside glue's cache: its own path
        m = PeftModel.from_pretrained(base, adapter, is_trainable=False)
        m.merge_and_unload().save_pretrained(tmp, safe_serialization=True)
        for f in model.iterdir():  # tokenizer files and the like travel with the merged model
            if f.is_file() and not (tmp / f.name).exists() and not f.name.startswith("model"):
                shutil.copyfile(f, tmp / f.name)
    return out
