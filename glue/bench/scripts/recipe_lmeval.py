"""The saved mixtures of a ``glue recipe`` output directory scored through lm-eval (test split), beside the
native scores in its report.json: ``python -m glue.bench.scripts.recipe_lmeval OUT_DIR`` (one line per variant)."""

from __future__ import annotations

import json
import sys
import time


def main(out: str) -> int:
    import torch

    import glue  # noqa: F401  (registers the mixture auto classes)
    from glue.eval import evaluate
    from glue.io import load_model
    from glue.mix.request import RequestMixture

    torch.set_num_threads(1)
    rep = json.load(open(f"{out}/report.json"))
    tasks = rep["tasks"]
    for name in ("paper", "paper_routed", "searched"):
        v = rep.get(name)
        if not v:
            continue
        where = f"{out}/{name}"
        if v["level"] == "single":  # one expert won every task: model.json names that model
            where = f"{where}/" + json.load(open(f"{where}/model.json"))["model"]
        model, tok = (RequestMixture.load(where), None) if v["level"] == "request" else load_model(where)
        t0 = time.time()
        r = evaluate(model, tok, tasks, "test", "lmeval")
        native = v["test"]["scores"]
        print(f"{name}: lmeval {r.average:.4f} native {v['test']['average']:.4f} max|diff| "
              f"{max(abs(r.scores[t] - native[t]) for t in tasks):.2e} ({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
