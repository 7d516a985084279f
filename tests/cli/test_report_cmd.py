import json
import os
from pathlib import Path

from glue.cli import main


def test_report_writes_files_under_glue_results_and_prints_the_table(record_cases, capsys):
    record_cases({"single-base": ({"add": 0.5}, {"member": "base", "role": "base"}),
                  "merge-ties": ({"add": 0.75}, {"method": "ties"})})
    assert main(["report", "--zoo", "tiny", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["case"], r["family"], r["average"]) for r in rows] == [("single-base", "single", 0.5),
                                                                    ("merge-ties", "merge", 0.75)]
    d = Path(os.environ["GLUE_RESULTS"]) / "tiny"
    assert {p.name for p in d.iterdir()} >= {"report.md", "average.png", "tasks.png", "tradeoffs.png", "results.csv"}


def test_report_markdown_without_plots(record_cases, capsys):
    record_cases({"single-base": ({"add": 0.5}, {"member": "base", "role": "base"})})
    assert main(["report", "--zoo", "tiny", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Results: zoo `tiny`") and "## Plots" not in out
    assert not (Path(os.environ["GLUE_RESULTS"]) / "tiny" / "average.png").exists()


def test_report_of_a_zoo_without_results_fails_clearly(capsys):
    assert main(["report", "--zoo", "tiny"]) == 2
    assert "no results for zoo 'tiny'" in capsys.readouterr().err
