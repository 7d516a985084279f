"""One test per kind of bad input: glue exits 2 with an error naming the file or field (no traceback),
in reasonable time, and leaves nothing behind: the test's whole tmp tree (inputs, outputs, results
root) and the cache are byte-for-byte as before.

Each kind is ``setup(ctx) -> (argv | callable, [expected substrings])``; ``setup`` prepares files
before the snapshot is taken.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from glue.cli import main
from glue.paths import cache_dir


@dataclass
class Ctx:
    tmp: Path
    models: dict[str, Path]
    monkeypatch: pytest.MonkeyPatch

    def merge_cfg(self, data: dict, name: str = "merge.yaml") -> str:
        p = self.tmp / name
        p.write_text(yaml.safe_dump(data))
        return str(p)

    def linear(self, weights=(0.5, 0.5), **extra) -> str:
        ms = [self.models["tiny_ft_add"], self.models["tiny_ft_cmp"]]
        return self.merge_cfg({"method": "linear", "models": [{"model": str(m), "weight": w} for m, w in
                                                              zip(ms, weights)], **extra})

    def zoo(self, data: dict, name: str = "zoo.yaml") -> str:
        p = self.tmp / name
        p.write_text(yaml.safe_dump(data))
        return str(p)

    def two_members(self) -> list[dict]:
        return [{"name": n, "source": str(self.models[n])} for n in ("tiny_ft_add", "tiny_ft_cmp")]

    def out(self) -> str:
        return str(self.tmp / "out")


def _header(path: Path) -> tuple[dict, int]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), n


def _rewrite_header(path: Path, edit) -> None:
    """Edit the JSON header of a safetensors file in place, keeping its length (space padding)."""
    raw = path.read_bytes()
    h, n = _header(path)
    edit(h)
    new = json.dumps(h, separators=(",", ":")).encode()
    assert len(new) <= n, "edited header must not grow"
    path.write_bytes(raw[:8] + new + b" " * (n - len(new)) + raw[8 + n:])


def _two_tensors(h: dict) -> tuple[str, str]:
    names = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])
    return names[0], names[1]


def _overlap(h):
    a, b = _two_tensors(h)
    h[b]["data_offsets"] = [h[a]["data_offsets"][0], h[a]["data_offsets"][0] + (h[b]["data_offsets"][1]
                                                                               - h[b]["data_offsets"][0])]


def _shape(h):
    a, _ = _two_tensors(h)
    h[a]["shape"] = [x * 2 for x in h[a]["shape"]]


def _past_end(h):
    last = max((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][1])
    lo, hi = h[last]["data_offsets"]
    h[last]["data_offsets"] = [hi, 2 * hi - lo]  # moved just past the end of the data (same header length)


def _weights(c: Ctx) -> Path:
    return c.models["tiny_ft_cmp"] / "model.safetensors"


def _corrupt(edit):
    def setup(c: Ctx):
        _rewrite_header(_weights(c), edit)
        return ["merge", c.linear(), "--out", c.out()], [str(_weights(c))]
    return setup


def _record_nan(c: Ctx):
    from glue.record.provenance import Measurements, collect_provenance, make_record
    from glue.record.store import append

    rec = make_record("single-x", "tiny", {"member": "x"}, Measurements(scores={"add": math.nan}),
                      collect_provenance())
    return (lambda: append(rec)), ["single-x", "nan", "nothing was recorded"]


def _record_text_average(c: Ctx):
    runs = c.tmp / "results" / "tiny" / "runs"
    runs.mkdir(parents=True)
    from glue.record.provenance import Measurements, collect_provenance, make_record

    d = make_record("single-x", "tiny", {"member": "x"}, Measurements(scores={"add": 0.5}), collect_provenance()).to_dict()
    d["average"] = "high"
    (runs / "2025-01-01-aaaaaaa.jsonl").write_text(json.dumps(d) + "\n")
    return ["report", "--zoo", "tiny", "--no-plots"], ["2025-01-01-aaaaaaa.jsonl:1", "average 'high'"]


def _readonly(c: Ctx):
    import errno

    real = os.mkdir

    def mkdir(path, *a, **k):
        if str(path).startswith(str(c.tmp / "ro")):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, *a, **k)

    c.monkeypatch.setattr(os, "mkdir", mkdir)
    return ["merge", c.linear(), "--out", str(c.tmp / "ro" / "out")], ["Read-only file system", str(c.tmp / "ro")]


def _full_disk(c: Ctx):
    import resource
    import signal

    cfg = c.linear()

    def go():
        old_sig = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        old = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, old[1]))  # writes past 4 KB fail, like a full disk
        try:
            return main(["merge", cfg, "--out", c.out(), "--no-progress"])
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old)
            signal.signal(signal.SIGXFSZ, old_sig)
    return go, ["cannot write", c.out(), "File too large"]


def _existing_foreign(c: Ctx):
    d = c.tmp / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("years of work")
    return ["merge", c.linear(), "--out", str(d), "--overwrite"], [str(d), "not written by glue", ".glue-output"]


def _parent_of_inputs(c: Ctx):
    return ["merge", c.linear(), "--out", str(c.tmp / "models"), "--overwrite"], ["contains the input", "models"]


def _into_cache(c: Ctx):
    return (["select", "--zoo", "tiny", "--strategy", "average", "--method", "linear", "--out", str(cache_dir()),
             "--overwrite", "--limit", "2"], ["glue's cache", str(cache_dir().resolve())])


def _cache_ancestor(c: Ctx):
    return ["merge", c.linear(), "--out", str(cache_dir().parent), "--overwrite"], ["ancestor of glue's cache"]


def _results_root(c: Ctx):
    (c.tmp / "results").mkdir(exist_ok=True)
    return ["merge", c.linear(), "--out", str(c.tmp / "results"), "--overwrite"], ["results root"]


def _inside_input(c: Ctx):
    target = c.models["tiny_ft_add"] / "merged"
    return ["merge", c.linear(), "--out", str(target)], ["inside the input model directory",
                                                         str(c.models["tiny_ft_add"])]


def _is_input(c: Ctx):
    return ["merge", c.linear(), "--out", str(c.models["tiny_ft_add"]), "--overwrite"], ["is one of the inputs"]


def _parent_is_file(c: Ctx):
    (c.tmp / "afile").write_text("x")
    return ["merge", c.linear(), "--out", str(c.tmp / "afile" / "out")], ["is a file, not a directory",
                                                                         str(c.tmp / "afile")]


def _out_is_file(c: Ctx):
    (c.tmp / "afile").write_text("x")
    return ["merge", c.linear(), "--out", str(c.tmp / "afile"), "--overwrite"], ["not a directory"]


def _exists(c: Ctx):
    (c.tmp / "out").mkdir()
    return ["merge", c.linear(), "--out", c.out()], ["already exists", "--overwrite"]


def _zoo_escape(c: Ctx):
    z = c.zoo({"name": "../escaped", "members": c.two_members()})
    return ["cluster", "--zoo", z], [z, "zoo name '../escaped'"]


def _member_escape(c: Ctx):
    m = c.two_members()
    m[0]["name"] = "../../etc"
    z = c.zoo({"name": "z", "members": m})
    return ["cluster", "--zoo", z], [z, "member name '../../etc'"]


def _role(c: Ctx):
    m = c.two_members()
    m[0]["role"] = "boss"
    z = c.zoo({"name": "z", "members": m})
    return ["eval", "--zoo", z, "--evaluator", "native", "--limit", "1"], [z, "members[0].role is 'boss'", "finetune"]


def _arch(c: Ctx):
    m = c.two_members()
    m[1]["architecture"] = 42
    z = c.zoo({"name": "z", "members": m})
    return ["eval", "--zoo", z, "--evaluator", "native", "--limit", "1"], [z, "members[1].architecture is 42"]


def _missing_later_member(c: Ctx):
    m = c.two_members() + [{"name": "gone", "source": str(c.tmp / "nowhere")}]
    z = c.zoo({"name": "z", "members": m})
    return ["eval", "--zoo", z, "--evaluator", "native", "--limit", "1"], ["member 'gone'", str(c.tmp / "nowhere")]


def _model_is_file(c: Ctx):
    f = c.tmp / "model.bin"
    f.write_text("x")
    cfg = c.merge_cfg({"method": "linear", "models": [str(c.models["tiny_ft_add"]), str(f)]})
    return ["merge", cfg, "--out", c.out()], [str(f), "is not a directory"]


def _zoo_member_is_file(c: Ctx):
    f = c.tmp / "model.bin"
    f.write_text("x")
    m = c.two_members()
    m[1]["source"] = str(f)
    z = c.zoo({"name": "z", "members": m})
    return ["eval", "--zoo", z, "--evaluator", "native", "--limit", "1"], [str(f), "is not a directory"]


def _remote_code(c: Ctx):
    cfg = c.models["tiny_ft_cmp"] / "config.json"
    d = json.loads(cfg.read_text())
    d["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    cfg.write_text(json.dumps(d))
    (c.models["tiny_ft_cmp"] / "modeling_evil.py").write_text("raise SystemExit('ran remote code')\n")
    m = c.two_members()
    z = c.zoo({"name": "z", "members": m})
    return ["eval", "--zoo", z, "--evaluator", "native", "--limit", "1"], [str(cfg), "needs its own Python code",
                                                                          "trust_remote_code=False"]


def _code_task(c: Ctx):
    return ["eval", "--zoo", "tiny", "--tasks", "mbpp", "--limit", "1"], ["mbpp", "--allow-code-execution"]


def _then(_effect, value):
    """``value``, after the side effect evaluated as the first argument (keeps the table's lambdas short)."""
    return value


ZOO_EVAL = ["eval", "--zoo", "tiny", "--evaluator", "native"]

KINDS = {
    # -- data loss and escape (findings 1-3)
    "overwrite a directory glue did not write": _existing_foreign,
    "overwrite the parent of the inputs": _parent_of_inputs,
    "overwrite the cache ($GLUE_CACHE)": _into_cache,
    "overwrite an ancestor of the cache": _cache_ancestor,
    "overwrite the results root": _results_root,
    "output inside an input model": _inside_input,
    "output is an input": _is_input,
    "zoo name escapes the results folder": _zoo_escape,
    "member name with path separators": _member_escape,
    # -- silent wrong numbers (4-10)
    "eval --limit -3": lambda c: (ZOO_EVAL + ["--limit", "-3"], ["--limit", "-3", ">= 1"]),
    "eval --limit 0 (lmeval)": lambda c: (["eval", "--zoo", "tiny", "--limit", "0"], ["--limit", ">= 1"]),
    "select --limit 0": lambda c: (["select", "--zoo", "tiny", "--strategy", "average", "--method", "linear",
                                    "--out", c.out(), "--limit", "0"], ["limit", "0"]),
    "normalize: weights nearly cancel": lambda c: (["merge", c.linear((1, -0.999)), "--out", c.out()],
                                                   ["merge.yaml", "nearly cancel", "normalize: false"]),
    "normalize: weights flip sign": lambda c: (["merge", c.linear((-1, 0.5)), "--out", c.out()],
                                               ["merge.yaml", "flip the sign", "normalize: false"]),
    "safetensors: overlapping tensors": _corrupt(_overlap),
    "safetensors: shape does not match bytes": _corrupt(_shape),
    "safetensors: offsets past the end": _corrupt(_past_end),
    "merge config lists a model twice": lambda c: (
        ["merge", c.merge_cfg({"method": "linear", "models": [str(c.models["tiny_ft_add"])] * 2}), "--out", c.out()],
        ["merge.yaml", "more than once"]),
    "glue config: base also among models": lambda c: (
        ["merge", c.merge_cfg({"method": "task_arithmetic", "base": str(c.models["tiny_base"]),
                               "models": [str(c.models["tiny_base"]), str(c.models["tiny_ft_add"])]}), "--out",
         c.out()], ["merge.yaml", "also listed in models"]),
    "eval --members duplicate": lambda c: (ZOO_EVAL + ["--members", "tiny_ft_add", "tiny_ft_add"],
                                           ["--members", "tiny_ft_add", "more than once"]),
    "zoo role boss": _role,
    "zoo architecture 42": _arch,
    "NaN score written to the store": _record_nan,
    "report: record with a text average": _record_text_average,
    "eval: a later member is missing": _missing_later_member,
    # -- tracebacks that are now errors (11)
    "read-only output location": _readonly,
    "output parent is a file": _parent_is_file,
    "--overwrite onto a file": _out_is_file,
    "disk full while writing": _full_disk,
    "eval --device cuda without CUDA": lambda c: (ZOO_EVAL + ["--device", "cuda"], ["cuda", "not available"]),
    "zoo verify of a real zoo": lambda c: (["zoo", "verify", "which2"], ["which2", "real zoo"]),
    "merge: model path is a file": _model_is_file,
    "zoo member path is a file": _zoo_member_is_file,
    # -- security (16-17)
    "model needing remote code": _remote_code,
    "code task without --allow-code-execution": _code_task,
    # -- bad input glue already handled
    "unknown zoo": lambda c: (["eval", "--zoo", "tiniest"], ["unknown zoo 'tiniest'", "tiny"]),
    "unknown member": lambda c: (ZOO_EVAL + ["--members", "ghost"], ["unknown member", "ghost", "tiny_ft_add"]),
    "unknown task": lambda c: (ZOO_EVAL + ["--tasks", "poetry"], ["unknown task 'poetry'", "add"]),
    "unknown merge method": lambda c: (["merge", c.merge_cfg({"method": "blend", "models": [
        str(c.models["tiny_ft_add"])]}), "--out", c.out()], ["merge.yaml", "blend", "linear"]),
    "unknown strategy": lambda c: (["select", "--zoo", "tiny", "--strategy", "luck", "--method", "linear", "--out",
                                    c.out()], ["luck", "coefficient"]),
    "missing config.json": lambda c: _then((c.models["tiny_ft_cmp"] / "config.json").unlink(), (
        ["merge", c.linear(), "--out", c.out()], [str(c.models["tiny_ft_cmp"] / "config.json")])),
    "corrupt config.json": lambda c: _then((c.models["tiny_ft_cmp"] / "config.json").write_text("{oops"), (
        ["merge", c.linear(), "--out", c.out()], ["corrupt", str(c.models["tiny_ft_cmp"] / "config.json")])),
    "no weights file": lambda c: _then(_weights(c).unlink(), (
        ["merge", c.linear(), "--out", c.out()], ["no model.safetensors", str(c.models["tiny_ft_cmp"])])),
    "truncated weights": lambda c: _then(_weights(c).write_bytes(_weights(c).read_bytes()[:-100]), (
        ["merge", c.linear(), "--out", c.out()], [str(_weights(c)), "past the end"])),
    "zoo YAML syntax error": lambda c: _then((c.tmp / "z.yaml").write_text("name: ["), (
        ["eval", "--zoo", str(c.tmp / "z.yaml")], [str(c.tmp / "z.yaml"), "invalid YAML"])),
    "zoo YAML unknown field": lambda c: (["eval", "--zoo", c.zoo({"name": "z", "members": c.two_members(),
                                                                  "colour": "red"})], ["colour", "allowed"]),
    "merge density out of range": lambda c: (
        ["merge", c.merge_cfg({"method": "ties", "base": str(c.models["tiny_base"]), "models": [
            {"model": str(c.models["tiny_ft_add"]), "density": 1.5}]}), "--out", c.out()], ["density", "1.5"]),
    "normalize: weights sum to zero": lambda c: (["merge", c.linear((1, -1)), "--out", c.out()], ["sum to zero"]),
    "merge --shard-size garbage": lambda c: (["merge", c.linear(), "--out", c.out(), "--shard-size", "lots"],
                                             ["invalid size 'lots'"]),
    "cluster --members duplicate": lambda c: (["cluster", "--zoo", "tiny", "--members", "tiny_ft_add", "tiny_ft_add",
                                               "tiny_harm"], ["tiny_ft_add"]),
    "report of a zoo without results": lambda c: (["report", "--zoo", "tiny"], ["no results for zoo 'tiny'"]),
}


@pytest.mark.parametrize("kind", list(KINDS), ids=[k.replace(" ", "_") for k in KINDS])
def test_bad_input_is_a_clear_error_and_leaves_nothing(kind, models, tmp_path, monkeypatch, capsys, rel):
    ctx = Ctx(tmp_path, models, monkeypatch)
    action, expected = KINDS[kind](ctx)
    rel.refused(kind, action, expected, tmp_path, monkeypatch, capsys)
