import json

import pytest

from glue.cli import main


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUE_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results" / "tiny" / "cluster"


def test_cluster_tiny_prints_matrix_and_clusters_and_writes_files(tiny_zoo, results, capsys):
    assert main(["cluster", "--zoo", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "| tiny_other | - | - | - | - | 1.000 |" in out  # other architecture: never compared
    assert "| 2 | tiny_drift | drift |" in out and "| 3 | tiny_other | other |" in out
    assert "planted families at threshold 0.95: recovered exactly" in out
    for f in ("similarity_all.csv", "similarity_attn.csv", "similarity_mlp.csv", "clusters.json", "heatmap.png",
              "dendrogram.png"):
        assert (results / f).stat().st_size > 0, f
    for png in ("heatmap.png", "dendrogram.png"):
        assert (results / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((results / "clusters.json").read_text())
    assert saved["clusters"] == [["tiny_ft_add", "tiny_ft_cmp", "tiny_harm"], ["tiny_drift"], ["tiny_other"]]
    csv = (results / "similarity_all.csv").read_text().splitlines()
    assert csv[0] == "model,tiny_ft_add,tiny_ft_cmp,tiny_harm,tiny_drift,tiny_other"
    assert csv[-1].startswith("tiny_other,,,,,")


def test_cluster_sweep_json(tiny_zoo, results, capsys):
    assert main(["cluster", "--zoo", "tiny", "--sweep", "--method", "agglomerative", "--linkage", "complete",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    counts = [row["clusters"] for row in doc["threshold sweep"]]
    assert counts == sorted(counts) and counts[0] == 2 and counts[-1] == 5  # 2 architectures at the bottom
    assert doc["similarity"][0]["tiny_other"] is None


def test_cluster_delta_and_members(tiny_zoo, results, capsys):
    assert main(["cluster", "--zoo", "tiny", "--delta-from", "tiny_base", "--members", "tiny_ft_add", "tiny_ft_cmp",
                 "--threshold", "0.1", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "task vectors from tiny_base" in out and "\n1,tiny_ft_add,base," in out and "\n1,tiny_ft_cmp,base," in out
    (sub,) = results.glob("subset-2-*")  # a subset's files do not replace the whole zoo's
    assert (sub / "heatmap-delta-tiny_base.png").is_file() and not (results / "heatmap-delta-tiny_base.png").exists()
    assert json.loads((sub / "clusters-delta-tiny_base.json").read_text())["members"] == ["tiny_ft_add", "tiny_ft_cmp"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--delta-from", "nope"], "unknown delta base of zoo 'tiny'"),
    (["--members", "tiny_base", "--delta-from", "tiny_base"], "delta base 'tiny_base' is also a member"),
    (["--members", "tiny_ft_ad"], "Did you mean 'tiny_ft_add'"),
    (["--threshold", "2"], "threshold must be a number in [-1, 1]"),
])
def test_cluster_errors_are_one_line(tiny_zoo, results, capsys, argv, message):
    assert main(["cluster", "--zoo", "tiny", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glue cluster: error: ") and message in err and "Traceback" not in err
