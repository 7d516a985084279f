"""Pin the instruction set of torch's CPU kernels, so that the same recipe trains bitwise-identical weights
on every x86 machine with AVX2.

Why: float sums are rounded differently by the AVX2 and AVX-512 code paths of ATen (torch's own
kernels) and of MKL (the BLAS behind every CPU matmul). A surrogate model trained for 2000 steps
amplifies those last-bit differences until it learns something else: the same recipe gave different
weights and accuracies on an AMD EPYC (AVX2) and an Intel Xeon (AVX-512) (issue 14).

The pin sets three environment variables, which the libraries read once, when they first run a kernel:

- ``ATEN_CPU_CAPABILITY=avx2``: ATen dispatches its AVX2 kernels even on an AVX-512 CPU.
- ``MKL_CBWR=AVX2``: MKL's conditional numerical reproducibility on its AVX2 code branch
  (https://www.intel.com/content/www/us/en/docs/onemkl/developer-guide-linux/2024-2/specifying-code-branches.html).
  MKL documents bitwise-equal results for this branch on every Intel CPU with AVX2; on other vendors'
  CPUs it runs its default (AUTO) branch instead, so Intel-vs-AMD equality is observed (issue 14's
  target digests), not promised by MKL.
- ``ONEDNN_MAX_CPU_ISA=AVX2``: the same for oneDNN (not on the fp32 training path today; set for the ops
  that reach it).

``glue/__init__.py`` calls :func:`pin` first thing, so every process that imports glue before torch
(the ``glue`` command, pytest through ``conftest.py``, the build's spawned workers, which also inherit
the environment) is pinned. ``GLUE_KERNELS`` chooses the preset: ``avx2`` (default) or ``native``
(opt out: each library picks the fastest path for this CPU, and builds go to their own cache keys).
A variable the user already set is left alone, and :func:`state` reports what is in force; it goes
into every record (``provenance.machine.kernels``) and every built model's ``glue_recipe.json``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PRESETS: dict[str, dict[str, str]] = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "native": {},
}
DEFAULT = "avx2"
VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")


def preset() -> str:
    """The preset named by ``$GLUE_KERNELS`` (default ``avx2``); ``ValueError`` naming the allowed values."""
    name = os.environ.get("GLUE_KERNELS", DEFAULT).strip().lower() or DEFAULT
    if name not in PRESETS:
        raise ValueError(f"GLUE_KERNELS={name!r} is not a kernel preset; allowed: {', '.join(PRESETS)}")
    return name


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_isa(flags: set[str] | None = None) -> str:
    """The widest vector instruction set of this CPU: ``avx512``, ``avx2``, ``other``."""
    flags = cpu_flags() if flags is None else flags
    if "avx512f" in flags:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return "other"


def pin() -> str:
    """Apply the ``$GLUE_KERNELS`` preset to the environment (variables already set are kept); return its name.

    An ``avx2`` pin on a CPU without AVX2 (or off x86) is not applied: the libraries could not honour it.
    """
    name = preset()
    if name == "avx2" and cpu_isa() == "other":
        return name
    for k, v in PRESETS[name].items():
        os.environ.setdefault(k, v)
    return name


def state() -> dict[str, str | bool | None]:
    """What is in force in this process: the preset, the CPU's ISA, each variable, whether it is as pinned,
    and ATen's capability (read from torch only when torch is already imported; never imports it)."""
    name = preset()
    want = PRESETS[name]
    env = {k: os.environ.get(k) for k in VARIABLES}
    out: dict[str, str | bool | None] = {"preset": name, "cpu_isa": cpu_isa()}
    out |= {k.lower(): v for k, v in env.items()}
    torch = sys.modules.get("torch")
    aten = None
    if torch is not None:
        try:
            aten = torch.backends.cpu.get_cpu_capability()
        except Exception:  # an old or exotic torch must not break recording
            aten = None
    out["aten_capability"] = aten
    pinned = all(env[k] == v for k, v in want.items()) and (aten is None or "ATEN_CPU_CAPABILITY" not in want
                                                            or aten.lower() == want["ATEN_CPU_CAPABILITY"])
    out["pinned"] = bool(want) and pinned and out["cpu_isa"] != "other"
    return out


def cache_tag() -> str | None:
    """Suffix for surrogate cache keys: None under the default preset (keys unchanged), else its name,
    so that opted-out (``native``) builds never mix with pinned ones in the cache."""
    name = preset()
    return None if name == DEFAULT else name


def require_pinned() -> dict:
    """``state()``, or a ``ConfigError`` when the default pin should be in force but is not (torch was
    imported, and chose its kernels, before glue; or a variable is set to something else)."""
    from glue.errors import ConfigError

    s = state()
    if s["preset"] == DEFAULT and s["cpu_isa"] != "other" and not s["pinned"]:
        raise ConfigError(
            f"the CPU kernels are not pinned to {DEFAULT} (in force: ATen {s['aten_capability']}, "
            f"ATEN_CPU_CAPABILITY={s['aten_cpu_capability']}, "
            f"MKL_CBWR={s['mkl_cbwr']}, ONEDNN_MAX_CPU_ISA={s['onednn_max_cpu_isa']}): import glue before torch, "
            f"unset those variables, or set GLUE_KERNELS=native to build unpinned models under their own cache keys")
    return s
