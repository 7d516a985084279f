import pytest

from glue.errors import ConfigError
from glue.record.provenance import Measurements, make_record
from glue.record.report import References, figure_average, ordered, render_markdown, write_report

CASES = {
    "single-base": ({"add": 0.9, "mul": 0.9}, {"member": "base", "role": "base"}),  # base beats every member
    "single-ft_a": ({"add": 0.8, "mul": 0.2}, {"member": "ft_a", "role": "finetune"}),
    "single-ft_b": ({"add": 0.1, "mul": 0.5}, {"member": "ft_b", "role": "finetune"}),
    "mix-router": ({"add": 0.7, "mul": 0.7}, {"router": "top1"}),
    "merge-ties-x": ({"add": 0.6, "mul": 0.6}, {"method": "ties"}),
    "merge-linear-x": ({"add": 0.9, "mul": 0.6}, {"method": "linear"}),
    "zeta-other": ({"add": 0.0}, {}),
}


def test_cases_are_grouped_by_family_best_first(record_cases):
    recs = ordered(record_cases(CASES))
    assert [r.case for r in recs] == ["single-base", "single-ft_a", "single-ft_b", "merge-linear-x", "merge-ties-x",
                                      "mix-router", "zeta-other"]


def test_references_are_the_base_and_the_best_other_single_model(record_cases):
    refs = References.of(record_cases(CASES))
    assert (refs.base.case, refs.best_single.case) == ("single-base", "single-ft_a")
    assert [label for label, _, _ in refs.lines()] == ["base base (0.900)", "best single ft_a (0.500)"]
    assert References.of(record_cases({"merge-x": ({"add": 1.0}, {})})).lines() == []


def test_markdown_is_a_pure_function_of_records_with_one_table_per_family(record_cases):
    recs = record_cases(CASES)
    md = render_markdown(recs, "tiny", {"average": "average.png"})
    assert md == render_markdown(list(reversed(recs)), "tiny", {"average": "average.png"})
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads == ["## Best case per family", "## single (3 cases)", "## merge (2 cases)", "## mix (1 cases)",
                     "## zeta (1 cases)", "## Plots", "## Provenance"]
    assert "# Results: zoo `tiny`" in md and "split test · evaluator native · 7 cases" in md
    assert "| single-ft_b | 0.300 | -.200 [n/a] | 0.100 | 0.500 |" in md  # average, vs best single, tasks
    assert "| merge | merge-linear-x | 0.750 |  | +.250 [n/a] | .000 [n/a] | +.050 [n/a] |" in md
    assert "7 of 7 cases keep no per-item outcomes (recorded before they were kept)" in md  # old records: said
    assert "![Average accuracy per case](average.png)" in md and "| aaaaaaa | False |" in md


def test_write_report_writes_markdown_and_pngs_from_the_latest_records(tmp_path, record_cases):
    record_cases(CASES)
    record_cases({"single-ft_b": ({"add": 1.0, "mul": 1.0}, {"member": "ft_b", "role": "finetune"})}, limit=5)
    rep = write_report("tiny", tmp_path / "results")
    d = tmp_path / "results" / "tiny"
    assert rep.files == {"average": d / "average.png", "tasks": d / "tasks.png", "tradeoffs": d / "tradeoffs.png",
                         "report": d / "report.md"}
    for key in ("average", "tasks", "tradeoffs"):
        assert rep.files[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (d / "report.md").read_text() == rep.markdown + "\n"
    assert "limit 5 on 1 of 7 cases (smoke run)" in rep.markdown  # one case comes from a smoke run: said in the titles
    assert "None" not in rep.markdown
    assert len(rep.table) == 7 and rep.table.set_index("case").at["single-ft_b", "average"] == 1.0


def test_figures_grow_with_the_number_of_cases(provenance):
    def recs(n):  # records made in memory: figures need no store
        cfg = {"split": "test", "evaluator": "native"}
        return [make_record(f"merge-m{i}", "tiny", cfg, Measurements({"add": i / n}), provenance) for i in range(n)]

    few, many = figure_average(recs(3), "tiny"), figure_average(recs(30), "tiny")
    assert many.get_figheight() > 2.5 * few.get_figheight()
    assert "zoo tiny" in many.get_suptitle() and "split test" in many.get_suptitle()


def test_a_zoo_without_results_is_a_clear_error(tmp_path, record_cases):
    record_cases({"single-a": ({"add": 1.0}, {})}, zoo="other")
    with pytest.raises(ConfigError, match="no results for zoo 'tiny'.*Zoos with results: other"):
        write_report("tiny", tmp_path / "results")


def test_figures_draw_one_series_per_case_and_task(record_cases, png_size):
    """The figures themselves, before saving: one bar per case (labelled by case id), the reference
    lines, and one heatmap cell per case and task; the saved PNG grows with the number of cases."""
    from glue.record.report import figure_average, figure_tasks, png_bytes

    recs = record_cases(CASES)
    fig = figure_average(recs, "tiny")
    ax = fig.axes[0]
    with_avg = [r for r in recs if r.average is not None]
    assert len(ax.patches) == len(with_avg)
    assert sorted(t.get_text() for t in ax.get_yticklabels()) == sorted(r.case for r in with_avg)
    assert {ln.get_label() for ln in ax.get_lines()} >= {"base base (0.900)", "best single ft_a (0.500)"}
    big = png_size(png_bytes(fig))
    small = png_size(png_bytes(figure_average(recs[:3], "tiny")))
    assert big[0] > 400 and big[1] > small[1] > 100
    grid = figure_tasks(recs, "tiny").axes[0].images[0].get_array()
    tasks = list(dict.fromkeys(t for r in recs for t in r.scores))
    assert grid.shape == (len(recs), len(tasks) + 1)


def test_long_extra_fields_go_to_details_and_tables_stay_readable(provenance):
    """A dict/list or long text in ``extra`` leaves the family table for the Details section (rendered as
    ``key: a=1, b=2``); short extras stay columns (without the ``extra.`` prefix), whole numbers without
    decimals; results.csv is linked for everything else."""
    cfg = {"split": "test", "evaluator": "native"}
    recs = [make_record("mix-a", "tiny", cfg, Measurements({"add": 0.5}, extra={
                "route": {"add": "ft_a", "mul": "ft_b"}, "total_params": 2114432, "gen_tok_s": 165.2,
                "note": "x" * 40}), provenance),
            make_record("mix-b", "tiny", cfg, Measurements({"add": 0.7}, extra={"total_params": 1000}), provenance)]
    md = render_markdown(recs, "tiny")
    table = [ln for ln in md.split("## mix (2 cases)")[1].split("## Details")[0].splitlines() if ln.startswith("|")]
    assert table[0].startswith("| case | average | vs_best_mixture | add |") and "| total_params | gen_tok_s |" in table[0]
    assert "| mix-a | 0.500 | -.200 [n/a] | 0.500 |" in table[3] and "| 2114432 | 165.200 |" in table[3], table
    assert not any("{" in ln or "route" in ln or "x" * 40 in ln for ln in table)
    details = md.split("## Details")[1].split("## Provenance")[0]
    assert "[results.csv](results.csv)" in details and "### mix" in details
    assert f"- `mix-a`: route: add=ft_a, mul=ft_b; note: {'x' * 40}" in details and "mix-b" not in details
    plain = render_markdown(recs[1:], "tiny")
    assert "## Details" not in plain and "| 1000 |" in plain


ITEMS = {  # per-item outcomes: 20 items per task
    "single-base": ({"add": [1, 0] * 10, "mul": [0] * 20}, {"member": "base", "role": "base"}),
    "single-ft_a": ({"add": [1] * 14 + [0] * 6, "mul": [1] * 10 + [0] * 10}, {"member": "ft_a", "role": "finetune"}),
    "single-ft_b": ({"add": [1] * 10 + [0] * 10, "mul": [1] * 9 + [0] * 11}, {"member": "ft_b", "role": "finetune"}),
    "merge-linear-x": ({"add": [1] * 20, "mul": [1] * 12 + [0] * 8}, {"method": "linear"}),
    "mix-router": ({"add": [1] * 19 + [0], "mul": [1] * 20}, {"router": "top1"}),
}


def test_every_score_carries_its_uncertainty_in_results_csv_and_the_report(tmp_path, record_outcomes):
    """Standard errors per task and of the average, and every vs_* a paired difference with its 95% interval
    (recomputed here from the outcomes with glue.record.stats) in results.csv and in the report's tables."""
    import numpy as np
    import pandas as pd

    from glue.record.stats import paired_difference, stderr

    recs = {r.case: r for r in record_outcomes(ITEMS)}
    rep = write_report("tiny", tmp_path / "results", plots=False)
    csv = pd.read_csv(tmp_path / "results" / "tiny" / "results.csv").set_index("case")
    items = {c: {t: np.array(v, float) for t, v in it.items()} for c, (it, _) in ITEMS.items()}
    want = paired_difference(items["merge-linear-x"], items["single-ft_a"])
    row = csv.loc["merge-linear-x"]
    assert row["vs_best_single"] == pytest.approx(want.diff) and row["vs_best_single_case"] == "single-ft_a"
    assert (row["vs_best_single_low"], row["vs_best_single_high"]) == pytest.approx((want.low, want.high))
    assert row["vs_best_single_p"] == pytest.approx(want.p_value)
    assert row["se.add"] == 0 and row["se.mul"] == pytest.approx(stderr(items["merge-linear-x"]["mul"]))
    assert row["average_se"] == pytest.approx(stderr(items["merge-linear-x"]["mul"]) / 2)
    assert csv.loc["single-ft_a", "vs_best_single_low"] == 0 == csv.loc["single-ft_a", "vs_best_single_high"]
    mix = paired_difference(items["mix-router"], items["merge-linear-x"])
    line = next(ln for ln in rep.markdown.splitlines() if ln.startswith("| mix-router |"))
    assert f"| {paired_difference(items['mix-router'], items['single-ft_a']).text()} | {mix.text()} | .000 [.000, .000] |" \
        in line
    assert f"| merge-linear-x | 0.800 | {row['average_se']:.3f} | {want.text()} |" in rep.markdown
    assert "keep no per-item outcomes" not in rep.markdown
    assert recs["single-ft_a"].outcomes["add"] == {"ids": 20, "bits": "fffc00"}


def test_old_records_without_outcomes_render_with_n_a_intervals_and_say_so(tmp_path, record_outcomes, record_cases):
    record_outcomes(ITEMS)
    record_cases({"merge-ties-old": ({"add": 0.5, "mul": 0.5}, {"method": "ties"})})
    rep = write_report("tiny", tmp_path / "results")
    assert "1 of 6 cases keep no per-item outcomes (recorded before they were kept)" in rep.markdown
    assert "| merge-ties-old | 0.500 |  | -.100 [n/a] |" in rep.markdown
    assert all(rep.files[k].read_bytes()[:4] == b"\x89PNG" for k in ("average", "tasks", "tradeoffs"))


def test_plots_draw_95_percent_error_bars_where_outcomes_exist(record_outcomes, record_cases):
    from glue.record.compare import standard_errors
    from glue.record.report import figure_average, figure_tradeoffs

    recs = record_outcomes(ITEMS) + record_cases({"merge-ties-old": ({"add": 0.5, "mul": 0.5}, {"method": "ties"})})
    fig = figure_average(recs, "tiny")
    (ax,) = fig.axes
    from matplotlib.container import ErrorbarContainer

    eb = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    label = {y: t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels())}
    widths = {label[seg[0, 1]]: seg for seg in eb.lines[2][0].get_segments()}
    merge = next(r for r in recs if r.case == "merge-linear-x")
    lo, hi = widths["merge-linear-x"][:, 0]
    assert hi - lo == pytest.approx(2 * 1.96 * standard_errors(merge)[1])
    lo, hi = widths["merge-ties-old"][:, 0]
    assert hi == lo  # no outcomes: no bar
    assert "1 of 6 cases without per-item outcomes have none" in fig.get_suptitle()
    trade = figure_tradeoffs(recs, "tiny")
    assert any(c.has_yerr for ax in trade.axes for c in ax.containers)


def test_references_are_never_a_familys_best_case(record_cases):
    """``mix-ref-oracle`` (oracle routing, a ceiling) scores above every real mixture: the report lists it
    under the references, and the best mix case is the best real mixture (issue 24 item 5)."""
    from glue.record.compare import references
    from glue.record.provenance import is_reference

    recs = record_cases({**CASES, "mix-ref-oracle": ({"add": 0.95, "mul": 0.95}, {"reference": "oracle"})})
    md = render_markdown(recs, "tiny", {})
    best = md.split("## Best case per family", 1)[1].split("References (not cases", 1)
    assert "| mix | mix-router |" in best[0] and "mix-ref-oracle" not in best[0]
    assert "| mix | mix-ref-oracle | 0.950 |" in best[1].split("## ", 1)[0]
    assert references(recs)["best_mixture"].case == "mix-router"
    assert is_reference("mix-ref-oracle") and not is_reference("mix-router") and not is_reference("merge-ref")
