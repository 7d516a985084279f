"""Real-zoo members: local checks, the no-hub error, and fetching through a fake hub (never the network)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import torch

from glue.errors import CheckpointError, ConfigError
from glue.zoo import Member, Zoo, get_zoo, resolve
from glue.zoo import fetch as F


class FakeHub:
    """A hub whose repositories are local directories: ``files`` lists them, ``download`` copies one file.

    ``fail_after``: raise after that many downloads (an interrupted fetch); ``down``: unreachable."""

    def __init__(self, repos: dict[str, Path], fail_after: int | None = None, down: bool = False):
        self.repos, self.fail_after, self.down = repos, fail_after, down
        self.listed: list[str] = []
        self.downloaded: list[tuple[str, str]] = []

    def files(self, repo: str) -> dict[str, int | None]:
        if self.down:
            raise F.HubUnavailable("the Hugging Face hub cannot be reached (ConnectError: no network)")
        self.listed.append(repo)
        return {p.name: p.stat().st_size for p in self.repos[repo].iterdir() if p.is_file()}

    def download(self, repo: str, filename: str, dest: Path) -> None:
        if self.fail_after is not None and len(self.downloaded) >= self.fail_after:
            raise KeyboardInterrupt("killed mid-fetch")
        shutil.copyfile(self.repos[repo] / filename, dest / filename)
        self.downloaded.append((repo, filename))


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    r = tmp_path / "models"
    monkeypatch.setenv("GLUE_MODEL_ROOT", str(r))
    monkeypatch.setattr(F, "hf_cache_dir", lambda repo: None)  # the developer's own HF cache must not count
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    return r


def _zoo(*sources: str) -> Zoo:
    return Zoo("hubzoo", "real", tuple(Member(s.split("/")[1], s, "llama2") for s in sources[1:]), ("add",),
               Member(sources[0].split("/")[1], sources[0], "llama2", role="base"))


@pytest.fixture
def hub(make_llama, tmp_path):
    """Two hub repositories (safetensors plus files a fetch must skip: remote code, a pickle, a README)."""
    repos = {}
    for i, repo in enumerate(["org/base", "org/ft"]):
        d = make_llama(f"hub_{i}", seed=i)
        (d / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
        torch.save({"x": torch.zeros(2)}, d / "pytorch_model.bin")
        (d / "README.md").write_text("card\n")
        repos[repo] = d
    return repos


def test_missing_members_error_lists_each_and_where_to_put_it(root):
    z = get_zoo("which16")
    client = FakeHub({})
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as e:
        F.fetch_zoo(z, client, download=False, progress=False)
    msg = str(e.value)
    assert time.perf_counter() - t0 < 5
    assert "17 of 17 models" in msg and "$GLUE_MODEL_ROOT/<org>/<name>" in msg and "--offline" in msg
    for m in z.all_models():
        assert m.name in msg and str(root / m.source) in msg
    assert client.listed == []  # never asked the hub


def test_unreachable_hub_names_missing_members_only(root, hub):
    shutil.copytree(hub["org/base"], root / "org" / "base")  # one member already provided
    z = _zoo("org/base", "org/ft")
    with pytest.raises(CheckpointError) as e:
        F.fetch_zoo(z, FakeHub(hub, down=True), progress=False)
    msg = str(e.value)
    assert "1 of 2 models" in msg and "cannot be reached" in msg and "org/ft" in msg
    assert "org/base " not in msg


def test_hf_hub_offline_is_the_no_hub_error(root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set"):
        F.fetch_zoo(_zoo("org/base", "org/ft"), FakeHub({}), progress=False)


def test_fetch_downloads_weights_config_tokenizer_only_then_nothing(root, hub):
    from glue.io import load_model

    client = FakeHub(hub)
    states = F.fetch_zoo(_zoo("org/base", "org/ft"), client, progress=False)
    assert [s.status for s in states] == ["ok", "ok"]
    got = {f for _, f in client.downloaded}
    assert "model.safetensors" in got and "config.json" in got and "tokenizer.json" in got
    assert not got & {"modeling_evil.py", "pytorch_model.bin", "README.md"}
    d = root / "org" / "ft"
    assert not (d / F.INCOMPLETE).exists() and not (d / ".cache").exists()
    model, _ = load_model(d)
    ref, _ = load_model(hub["org/ft"])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))
    assert resolve(Member("ft", "org/ft", "llama2")) == d
    n = len(client.downloaded)
    F.fetch_zoo(_zoo("org/base", "org/ft"), client, progress=False)
    assert len(client.downloaded) == n  # all present: the hub is not even listed again
    assert client.listed == ["org/base", "org/ft"]


def test_interrupted_fetch_counts_as_missing_and_resumes(root, hub):
    z = _zoo("org/base", "org/ft")
    with pytest.raises(KeyboardInterrupt):
        F.fetch_zoo(z, FakeHub(hub, fail_after=2), progress=False)
    st = F.check(z.base)
    assert st.status == "bad" and "incomplete fetch" in st.detail
    with pytest.raises(CheckpointError, match="incomplete fetch"):
        resolve(z.base)
    per_repo = len(F.plan_member(z.base, FakeHub(hub).files("org/base"), False).files)
    client = FakeHub(hub)
    F.fetch_zoo(z, client, progress=False)
    assert len(client.downloaded) == 2 * per_repo - 2  # the two complete files were not fetched again
    assert F.check(z.base).status == "ok"


def test_free_disk_is_checked_before_any_download(root, hub, monkeypatch):
    monkeypatch.setattr(F, "free_bytes", lambda p: 1000)
    client = FakeHub(hub)
    with pytest.raises(CheckpointError, match=r"needs .* GB .* has 0.0 GB free"):
        F.fetch_zoo(_zoo("org/base", "org/ft"), client, progress=False)
    assert client.downloaded == [] and not (root / "org").exists()


@pytest.fixture
def bin_hub(make_llama):
    d = make_llama("binonly", seed=3)
    from transformers import AutoModelForCausalLM

    torch.save(AutoModelForCausalLM.from_pretrained(d).state_dict(), d / "pytorch_model.bin")  # a 2023-style repo
    (d / "model.safetensors").unlink()
    return {"org/base": d, "org/ft": d}, d


def test_bin_only_member_needs_the_opt_in(root, bin_hub):
    repos, src = bin_hub
    client = FakeHub(repos)
    with pytest.raises(CheckpointError, match="--convert-bin"):
        F.fetch_zoo(_zoo("org/base", "org/ft"), client, progress=False)
    assert client.downloaded == []


def test_bin_only_member_is_converted_with_the_opt_in(root, bin_hub, make_llama):
    from glue.io import load_model

    repos, src = bin_hub
    F.fetch_zoo(_zoo("org/base", "org/ft"), FakeHub(repos), convert_bin=True, progress=False)
    d = root / "org" / "ft"
    assert (d / "model.safetensors").is_file() and not list(d.glob("*.bin"))
    got = load_model(d)[0].state_dict()
    ref = torch.load(src / "pytorch_model.bin", weights_only=True)
    assert set(ref) <= set(got)
    assert all(torch.equal(got[k], v) for k, v in ref.items())


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_convert_refuses_a_pickle_that_runs_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"w": torch.zeros(2), "evil": _Evil()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        F.convert_bin_dir(tmp_path)
    assert not (tmp_path / "PWNED").exists() and (tmp_path / "pytorch_model.bin").exists()


def test_convert_unties_shared_tensors(tmp_path):
    from safetensors.torch import load_file

    w = torch.randn(4, 3)
    torch.save({"embed": w, "head": w, "half": w[:2]}, tmp_path / "pytorch_model.bin")
    F.convert_bin_dir(tmp_path)
    got = load_file(tmp_path / "model.safetensors")
    assert torch.equal(got["embed"], w) and torch.equal(got["head"], w) and torch.equal(got["half"], w[:2])


def test_local_member_with_other_architecture_is_refused(root, hub):
    d = root / "org" / "base"
    shutil.copytree(hub["org/base"], d)
    z = Zoo("z", "real", (Member("ft", str(hub["org/ft"]), "x", "MistralForCausalLM"),), ("add",))
    with pytest.raises(CheckpointError, match="config.json says LlamaForCausalLM, the zoo says MistralForCausalLM"):
        F.fetch_zoo(z, FakeHub({}), progress=False)


def test_require_local_is_a_config_error_listing_members(root):
    with pytest.raises(ConfigError, match="glue zoo build which2") as e:
        F.require_local(get_zoo("which2"))
    assert "vicuna-7b-v1.5" in str(e.value) and "Llama-2-7b-hf" in str(e.value)


def test_hfhub_maps_connection_failures_to_unavailable(monkeypatch):
    import huggingface_hub

    def boom(self, *a, **k):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", boom)
    with pytest.raises(F.HubUnavailable, match="cannot be reached"):
        F.HfHub().files("org/x")


def test_hub_id_detection():
    assert F.is_hub_id("meta-llama/Llama-2-7b-hf")
    assert not F.is_hub_id("surrogate:base") and not F.is_hub_id("/abs/dir") and not F.is_hub_id("./rel")
    assert not F.is_hub_id("a/b/c")


def test_cli_zoo_build_of_a_real_zoo_without_hub_exits_2_naming_members(root, capsys):
    from glue.cli import main

    assert main(["zoo", "build", "which2", "--offline"]) == 2
    err = capsys.readouterr().err
    assert "3 of 3 models" in err and "vicuna-7b-v1.5" in err and "downloads are off (--offline)" in err


def test_cli_zoo_build_of_a_real_zoo_on_disk_lists_paths(root, hub, capsys, tmp_path):
    from glue.cli import main

    for repo, d in hub.items():
        shutil.copytree(d, root / repo)
    (tmp_path / "z.yaml").write_text("name: z\ntasks: [add]\nbase: {name: b, source: org/base}\n"
                                     "members: [{name: f, source: org/ft}]\n")
    assert main(["zoo", "build", str(tmp_path / "z.yaml"), "--offline"]) == 0
    out = capsys.readouterr().out
    assert "2 models and 0 datasets ready" in out and str(root / "org" / "ft") in out  # its task (add) is local


def test_the_hub_fetch_takes_code_files_only_with_the_opt_in():
    from glue.zoo import fetch as F
    from glue.zoo.spec import Member

    m = Member(name="CrystalChat", source="LLM360/CrystalChat", family="crystal")
    files = {"config.json": 10, "model.safetensors": 100, "modeling_crystalcoder.py": 5, "tokenizer.json": 3}
    assert "modeling_crystalcoder.py" not in F.plan_member(m, files, False).files
    assert "modeling_crystalcoder.py" in F.plan_member(m, files, False, include_code=True).files
