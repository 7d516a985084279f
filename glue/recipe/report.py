"""The recipe's report: ``report.json`` (every number of the run), ``report.md`` (clusters, what each
cluster kept and dropped, the router's choices per task, and the per-task table of the recipe beside
the references) and ``tasks.png`` (per task: best single, best merge, the paper recipe, the paper's
experts with the router chosen on search, the searched recipe, oracle routing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "per_task_rows", "render", "tasks_png", "write_report"]

COLUMNS = (("best_single", "best single"), ("best_merge", "best merge"), ("best_mixture", "best mixture (recorded)"),
           ("paper", "paper recipe"), ("paper_routed", "paper experts, router on search"),
           ("searched", "searched recipe"), ("oracle", "oracle routing"),
           ("ceiling_test", "ceiling (test)"))


def per_task_rows(d: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """``(column labels, rows)`` of the per-task table from ``RecipeRun.to_dict()`` (``None`` where absent)."""
    tasks = d["tasks"]
    cols, data = [], {}
    for key, label in COLUMNS:
        if key in ("paper", "paper_routed", "searched"):
            v = d.get(key)
            scores = v["test"]["scores"] if v and v.get("test") else None
        else:
            ref = d["references"].get(key)
            scores = ref["scores"] if ref else None
        if scores is not None:
            cols.append(label)
            data[label] = scores
    rows = [{"task": t, **{c: data[c][t] for c in cols}} for t in tasks]
    rows.append({"task": "average", **{c: sum(data[c].values()) / len(data[c]) for c in cols}})
    return cols, rows


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(x):
        return f"{x:.3f}" if isinstance(x, float) else str(x)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def render(d: dict[str, Any]) -> str:
    """``report.md`` from ``RecipeRun.to_dict()``."""
    s = d["spec"]
    ev = s["eval"]
    out = [f"# Model-GLUE recipe on {s['zoo']}", "",
           f"Clusters: {s['cluster']['method']} at threshold {d['threshold']:g}; inside clusters: "
           f"{s['merge']['strategy']} / {s['merge']['method']} on search; mixture: level {s['mixture']['level'] if s['mixture'] else '-'}, "
           f"router {s['mixture']['router'] if s['mixture'] else '-'}. Reported split: {ev['split']} ({ev['evaluator']}"
           f"{', limit ' + str(ev['limit']) if ev['limit'] else ''}). Spec: `recipe.yaml`.", ""]
    if d.get("left_out"):
        out += ["Members left out of the whole run: " + "; ".join(f"{m}: {why}" for m, why in d["left_out"].items()),
                ""]
    out += ["## Clusters", ""]
    out.append(_table(["cluster", "members", "kept", "dropped", "search"],
                      [[c["name"], ", ".join(c["members"]), ", ".join(c["kept"]), ", ".join(c["dropped"]) or "-",
                        c["search_score"]] for c in d["clusters"]]))
    titles = {"paper": "Paper recipe", "paper_routed": "Paper recipe's experts, router chosen on search",
              "searched": "Searched recipe"}
    for key, title in titles.items():
        v = d.get(key)
        if not v:
            continue
        out += ["", f"## {title}: {', '.join(v['experts'])}", "",
                f"Level {v['level']} ({v['level_reason']}); router {v['router']}; search {v['search']['average']:.4f}, "
                f"test {v['test']['average']:.4f}.",
                *([f"Left out: " + "; ".join(f"{e} ({why})" for e, why in v["left_out"].items())] if v["left_out"] else []),
                "", "Router prompts (calib items of these tasks) and the router's choices on the reported split "
                    "(share of each task's items sent to each expert):", ""]
        src = v.get("router_prompt_source") or {}
        if src:
            out[-2:-2] = ["Calib prompts: " + "; ".join(src.values()) + ".", ""]
        out.append(_table(["expert", "prompts from", *v["router_choices_test"]],
                          [[e, ", ".join(v["router_prompts_from_tasks"].get(e, [])) or "-",
                            *[v["router_choices_test"][t].get(e, 0.0) for t in v["router_choices_test"]]]
                           for e in v["experts"]]))
    if d["search_trace"]:
        out += ["", f"## Search ({len(d['search_trace'])} mixture evaluations on search)", ""]
        out.append(_table(["experts", "router", "level", "ceiling (search)", "search"],
                          [[", ".join(r["experts"]), r["router"], r["level"], r["ceiling"], r["search"]]
                           for r in d["search_trace"]]))
    cols, rows = per_task_rows(d)
    out += ["", f"## Per task ({ev['split']})", "", _table(["task", *cols], [[r["task"], *[r[c] for c in cols]]
                                                                             for r in rows])]
    out += ["", "References: " + "; ".join(f"**{k}**: {r['what']}" for k, r in d["references"].items()), "",
            "Evaluations: " + ", ".join(f"{k} {v}" for k, v in d["evaluations"].items()) + ". Seconds: "
            + ", ".join(f"{k} {v:.1f}" for k, v in d["seconds"].items()) + "."]
    return "\n".join(out) + "\n"


def tasks_png(d: dict[str, Any], path: Path) -> Path:
    """Grouped bars per task (and the average) of the per-task table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols, rows = per_task_rows(d)
    cols = [c for c in cols if c != "ceiling (test)"]
    x = np.arange(len(rows))
    w = 0.8 / max(1, len(cols))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4))
    for i, c in enumerate(cols):
        ax.bar(x + (i - (len(cols) - 1) / 2) * w, [r[c] for r in rows], w, label=c)
    ax.set_xticks(x, [r["task"] for r in rows])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"accuracy ({d['spec']['eval']['split']})")
    ax.set_title(f"Model-GLUE recipe on {d['spec']['zoo']}")
    ax.legend(fontsize=7, ncol=min(3, len(cols)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(run, directory: Path) -> list[Path]:
    """Write ``report.json``, ``report.md`` and ``tasks.png`` of ``run`` (a ``RecipeRun``) into ``directory``."""
    d = run.to_dict()
    paths = [directory / "report.json", directory / "report.md", directory / "tasks.png"]
    paths[0].write_text(json.dumps(d, indent=1, default=str) + "\n")
    paths[1].write_text(render(d))
    tasks_png(d, paths[2])
    return paths
