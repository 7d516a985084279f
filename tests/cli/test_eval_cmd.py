import io

import pandas as pd
import pytest

from glue.cli import main


def test_eval_table_puts_the_base_first_with_the_average(tiny_zoo, capsys):
    rc = main(["eval", "--zoo", "tiny", "--members", "tiny_ft_cmp", "tiny_base", "--evaluator", "native",
               "--limit", "4", "--format", "csv"])
    assert rc == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(df["member"]) == ["tiny_base", "tiny_ft_cmp"] and list(df["role"]) == ["base", "finetune"]
    assert list(df.columns) == ["member", "role", *tiny_zoo.tasks, "average"]
    assert df["average"].tolist() == pytest.approx(df[list(tiny_zoo.tasks)].mean(axis=1).tolist())


def test_eval_markdown_names_the_best_member_per_task(tiny_zoo, capsys):
    assert main(["eval", "--zoo", "tiny", "--members", "tiny_ft_cmp", "tiny_drift", "--tasks", "cmp", "--evaluator",
                 "native", "--limit", "40"]) == 0
    out = capsys.readouterr().out
    assert "| member | role | cmp | average |" in out and "zoo tiny · split test · evaluator native · limit 40" in out
    rows = {ln.split("|")[1].strip(): float(ln.split("|")[3]) for ln in out.splitlines()
            if ln.startswith("| tiny_")}
    best = max(rows, key=rows.get)
    assert rows["tiny_ft_cmp"] != rows["tiny_drift"]  # the check below must be able to fail
    assert f"| cmp | {best} | {rows[best]:.3f} |" in out


@pytest.mark.parametrize("args, message", [
    (["--zoo", "tiny", "--members", "nope"], "unknown member of zoo 'tiny' 'nope'. Valid: tiny_base, tiny_drift"),
    (["--zoo", "tiny", "--tasks", "ad"], "unknown task 'ad'. Did you mean 'add'?"),
    (["--zoo", "tin"], "unknown zoo 'tin'. Did you mean 'tiny'?"),
])
def test_eval_unknown_names_list_the_valid_ones(args, message, capsys):
    assert main(["eval", *args, "--evaluator", "native"]) == 2
    assert message in capsys.readouterr().err
