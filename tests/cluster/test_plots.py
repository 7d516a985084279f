import numpy as np
import pytest

from glue.cluster.pipeline import ZooSimilarity
from glue.cluster.plots import dendrogram_png, heatmap_png
from glue.cluster.similarity import Similarity
from glue.errors import ConfigError

PNG = b"\x89PNG\r\n\x1a\n"


def sim_of(names, m):
    m = np.asarray(m, dtype=float)
    return Similarity(tuple(names), m, m, m, {"attn": 1, "mlp": 1, "all": 2})


def zoo_sim(n_big: int) -> ZooSimilarity:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_big, 4)) + 3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    big = sim_of([f"model_with_a_long_name_{i}" for i in range(n_big)], x @ x.T)
    return ZooSimilarity(big.names + ("lonely",), (big, sim_of(["lonely"], [[1.0]])), ("ArchA", "ArchB"))


def test_heatmap_and_dendrogram_of_a_large_zoo(tmp_path):
    z = zoo_sim(22)  # over the annotation limit: no numbers in cells, still a readable picture
    heatmap_png(z, tmp_path / "h.png", clusters=[list(z.names[:10]), list(z.names[10:])])
    dendrogram_png(z, tmp_path / "d.png", linkage="single", threshold=0.9, families={"lonely": "x"})
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG and (tmp_path / "d.png").read_bytes()[:8] == PNG


def test_dendrogram_without_any_pair(tmp_path):
    z = ZooSimilarity(("a", "b"), (sim_of(["a"], [[1.0]]), sim_of(["b"], [[1.0]])), ("ArchA", "ArchB"))
    dendrogram_png(z, tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes()[:8] == PNG
    with pytest.raises(ConfigError, match="unknown linkage 'ward'"):
        dendrogram_png(z, tmp_path / "e.png", linkage="ward")
