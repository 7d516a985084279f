"""The CPU kernel pin (glue.kernels): set before torch's first kernel, recorded, and it decides the weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glue import kernels

ROOT = Path(__file__).resolve().parents[1]
AVX2 = kernels.cpu_isa() in ("avx2", "avx512")
needs_avx2 = pytest.mark.skipif(not AVX2, reason="the avx2 pin applies only on x86 CPUs with AVX2")

# a few training steps of a tiny model, then the sha256 of its weights and the kernel state
_TRAIN = """
import hashlib, json, sys
import glue, torch
from glue.kernels import state
from glue.surrogate.train import Arch, train
torch.set_num_threads(1)
m = Arch(hidden=32, layers=2, heads=2).build(1)
train(m, {"add": 1.0, "rev": 1.0, "sort": 1.0}, 12, 3e-3, 1, batch=32)
h = hashlib.sha256()
for k, v in sorted(m.state_dict().items()):
    h.update(k.encode()); h.update(v.numpy().tobytes())
print(json.dumps({"digest": h.hexdigest(), "state": state()}))
"""


def _python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in (*kernels.VARIABLES, "GLUE_KERNELS")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    return lines[-1] if lines else ""


@needs_avx2
def test_importing_glue_pins_the_kernels_before_torch_chooses_them():
    s = json.loads(_python("import json, glue, torch; from glue.kernels import state; print(json.dumps(state()))"))
    assert (s["aten_cpu_capability"], s["mkl_cbwr"], s["onednn_max_cpu_isa"]) == ("avx2", "AVX2", "AVX2")
    assert s["aten_capability"] == "AVX2" and s["pinned"] is True


@needs_avx2
def test_native_opts_out_and_a_variable_the_user_set_is_kept():
    s = json.loads(_python("import json, glue; from glue.kernels import state; print(json.dumps(state()))",
                           GLUE_KERNELS="native"))
    assert s["preset"] == "native" and s["aten_cpu_capability"] is None and s["pinned"] is False
    s = json.loads(_python("import json, glue, torch; from glue.kernels import state; print(json.dumps(state()))",
                           ATEN_CPU_CAPABILITY="default"))
    assert s["aten_cpu_capability"] == "default" and s["aten_capability"] == "DEFAULT" and s["pinned"] is False


@needs_avx2
def test_a_build_refuses_to_train_unpinned_kernels_under_the_default_preset():
    code = ("import glue; from glue.kernels import require_pinned\n"
            "try:\n    require_pinned()\nexcept Exception as e:\n    print(type(e).__name__, e)")
    out = _python(code, ATEN_CPU_CAPABILITY="default")
    assert out.startswith("ConfigError") and "not pinned to avx2" in out and "GLUE_KERNELS=native" in out
    assert _python(code) == ""  # pinned: no error, nothing printed
    assert _python(code + "\nprint('ok')", GLUE_KERNELS="native", ATEN_CPU_CAPABILITY="default") == "ok"


@needs_avx2
def test_the_kernel_instruction_set_decides_the_weights():
    """The pin is what makes builds agree: another instruction set trains other weights (so a
    machine whose default differs would too), the pinned one the same weights every time."""
    pinned = json.loads(_python(_TRAIN))
    again = json.loads(_python(_TRAIN))
    other = json.loads(_python(_TRAIN, ATEN_CPU_CAPABILITY="default", MKL_CBWR="COMPATIBLE", GLUE_KERNELS="native"))
    assert pinned["digest"] == again["digest"]
    assert other["digest"] != pinned["digest"]
    assert other["state"]["aten_capability"] == "DEFAULT" and pinned["state"]["aten_capability"] == "AVX2"


def test_an_unknown_preset_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("GLUE_KERNELS", "avx9")
    with pytest.raises(ValueError, match="GLUE_KERNELS='avx9'.*allowed: avx2, native"):
        kernels.preset()


def test_cpu_isa_reads_the_widest_vector_set():
    assert kernels.cpu_isa({"sse2", "avx", "avx2", "fma"}) == "avx2"
    assert kernels.cpu_isa({"avx2", "fma", "avx512f"}) == "avx512"
    assert kernels.cpu_isa({"sse2", "avx"}) == "other" and kernels.cpu_isa(set()) == "other"
