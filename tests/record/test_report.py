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
    assert "| single-ft_b | 0.300 | -0.200 | 0.100 | 0.500 |" in md  # average, vs best single, tasks
    assert "| merge | merge-linear-x | 0.750 | 0.250 |" in md
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


def png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR chunk (asserting the signature)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_figures_draw_one_series_per_case_and_task(record_cases):
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
    assert table[0].startswith("| case | average | add |") and "| total_params | gen_tok_s |" in table[0]
    assert "| mix-a | 0.500 | 0.500 |" in table[3] and "| 2114432 | 165.200 |" in table[3], table
    assert not any("{" in ln or "route" in ln or "x" * 40 in ln for ln in table)
    details = md.split("## Details")[1].split("## Provenance")[0]
    assert "[results.csv](results.csv)" in details and "### mix" in details
    assert f"- `mix-a`: route: add=ft_a, mul=ft_b; note: {'x' * 40}" in details and "mix-b" not in details
    plain = render_markdown(recs[1:], "tiny")
    assert "## Details" not in plain and "| 1000 |" in plain
