import numpy as np
import pytest

from glue.cluster.pipeline import ZooSimilarity
from glue.cluster.plots import ANNOTATE_MAX, dendrogram_figure, dendrogram_png, heatmap_figure, heatmap_png
from glue.cluster.similarity import Similarity
from glue.errors import ConfigError


def sim_of(names, m):
    m = np.asarray(m, dtype=float)
    return Similarity(tuple(names), m, m, m, {"attn": 1, "mlp": 1, "all": 2})


def zoo_sim(n_big: int) -> ZooSimilarity:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_big, 4)) + 3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    big = sim_of([f"model_with_a_long_name_{i}" for i in range(n_big)], x @ x.T)
    return ZooSimilarity(big.names + ("lonely",), (big, sim_of(["lonely"], [[1.0]])), ("ArchA", "ArchB"))


def test_heatmap_draws_one_cell_per_pair_in_cluster_order_and_outlines_each_cluster():
    z = zoo_sim(5)
    names = list(z.names)
    clusters = [names[3:5], names[:3]]
    order = names[3:5] + names[:3] + ["lonely"]
    ax = heatmap_figure(z, clusters=clusters, families={"lonely": "x"}).axes[0]
    cells = ax.images[0].get_array()
    assert cells.shape == (6, 6)
    big = z.groups[0].all
    assert cells[0, 1] == pytest.approx(big[3, 4]) and cells[2, 4] == pytest.approx(big[0, 2])
    assert cells.mask.sum() == 2 * 5  # lonely against the other architecture: grey, not a number
    assert [t.get_text() for t in ax.get_yticklabels()] == order[:-1] + ["lonely [x]"]
    assert sorted(p.get_width() for p in ax.patches) == [2, 3]  # one red outline per cluster
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 36 and texts.count("-") == 10 and texts[1] == f"{big[3, 4]:.3f}"


def test_a_large_heatmap_has_no_numbers_and_a_larger_png(tmp_path, png_size):
    small, large = zoo_sim(5), zoo_sim(ANNOTATE_MAX + 2)
    ax = heatmap_figure(large).axes[0]
    assert ax.images[0].get_array().shape == (ANNOTATE_MAX + 3,) * 2 and not ax.texts
    heatmap_png(small, tmp_path / "s.png")
    heatmap_png(large, tmp_path / "l.png", clusters=[list(large.names[:10]), list(large.names[10:])])
    (ws, hs), (wl, hl) = png_size(tmp_path / "s.png"), png_size(tmp_path / "l.png")
    assert 300 < ws < wl and 300 < hs and hl > 1.6 * hs  # cells keep their size: 6 -> 23 models, ~2x the height


def test_dendrogram_has_one_panel_per_group_of_two_or_more_and_the_threshold_line(tmp_path, png_size):
    z = zoo_sim(5)
    fig = dendrogram_figure(z, linkage="single", threshold=0.9, families={"lonely": "x"})
    (ax,) = fig.axes  # "lonely" is alone in its architecture: no panel, listed below
    assert sorted(t.get_text() for t in ax.get_yticklabels()) == sorted(z.names[:5])
    assert ax.get_title() == "ArchA"
    cut = [ln for ln in ax.get_lines() if ln.get_label().startswith("threshold")]
    assert len(cut) == 1 and list(cut[0].get_xdata()) == pytest.approx([0.1, 0.1])
    assert any("lonely [x] (ArchB)" in t.get_text() for t in fig.texts)
    two = ZooSimilarity(z.names[:5] + ("c", "d"), (z.groups[0], sim_of(["c", "d"], [[1, 0.5], [0.5, 1]])),
                        ("ArchA", "ArchB"))
    assert [a.get_title() for a in dendrogram_figure(two).axes] == ["ArchA", "ArchB"]
    dendrogram_png(z, tmp_path / "one.png")
    dendrogram_png(two, tmp_path / "two.png")
    assert png_size(tmp_path / "two.png")[1] > png_size(tmp_path / "one.png")[1]


def test_dendrogram_without_any_pair(tmp_path, png_size):
    z = ZooSimilarity(("a", "b"), (sim_of(["a"], [[1.0]]), sim_of(["b"], [[1.0]])), ("ArchA", "ArchB"))
    fig = dendrogram_figure(z)
    assert [t.get_text() for t in fig.axes[0].texts] == ["no architecture group with two or more models"]
    assert "a (ArchA); b (ArchB)" in fig.texts[0].get_text()
    dendrogram_png(z, tmp_path / "d.png")
    assert min(png_size(tmp_path / "d.png")) > 100
    with pytest.raises(ConfigError, match="unknown linkage 'ward'"):
        dendrogram_png(z, tmp_path / "e.png", linkage="ward")
