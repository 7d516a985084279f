"""glue zoo show / build / verify: weight digests, the zoo fingerprint and the committed zoo.lock."""

import json
import os
from pathlib import Path

from glue.cli import main
from glue.surrogate import recipes as R
from glue.surrogate.lock import fingerprint, model_digest, zoo_lock


def test_build_prints_digests_and_tells_whether_the_zoo_equals_the_lock(tiny_zoo, capsys):
    results = Path(os.environ["GLUE_RESULTS"])
    assert main(["zoo", "build", "tiny"]) == 0
    out = capsys.readouterr().out
    assert f"tiny_harm            {model_digest('tiny_harm')[:16]}" in out
    assert "no " in out and "--write-lock" in out  # nothing to compare with yet
    assert main(["zoo", "build", "tiny", "--write-lock"]) == 0
    out = capsys.readouterr().out
    fp = fingerprint(zoo_lock(tiny_zoo))
    assert f"zoo tiny: fingerprint {fp} = {results / 'tiny' / 'zoo.lock'}" in out
    lock = json.loads((results / "tiny" / "zoo.lock").read_text())
    assert lock["fingerprint"] == fp and lock["models"] == zoo_lock(tiny_zoo)

    key = f"tiny_drift-{R.key('tiny_drift')}"
    lock["models"][key] = "f" * 64  # the results were recorded on another machine's weights
    (results / "tiny" / "zoo.lock").write_text(json.dumps(lock))
    assert main(["zoo", "build", "tiny"]) == 0
    out = capsys.readouterr().out
    assert f"fingerprint {fp} DIFFERS from" in out and f"1 model(s) with other weights: {key}" in out


def test_show_lists_each_models_digest_and_the_fingerprint(tiny_zoo, capsys):
    assert main(["zoo", "show", "tiny"]) == 0
    out = capsys.readouterr().out
    assert f"| {model_digest('tiny_ft_add')[:16]} |" in out
    assert f"zoo tiny: fingerprint {fingerprint(zoo_lock(tiny_zoo))}" in out
    assert main(["zoo", "show", "tiny", "--format", "json"]) == 0
    cap = capsys.readouterr()
    rows = json.loads(cap.out)  # only the table on stdout; the description and fingerprint went to stderr
    assert {r["digest"] for r in rows} == {d[:16] for d in zoo_lock(tiny_zoo).values()}
    assert "fingerprint" in cap.err


def test_show_of_a_real_zoo_says_it_has_no_fingerprint(capsys):
    assert main(["zoo", "show", "which2"]) == 0
    assert "a real zoo has no weight fingerprint" in capsys.readouterr().out


def test_show_of_an_unbuilt_seeded_zoo_says_what_is_missing(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("GLUE_CACHE", str(tmp_path))
    assert main(["zoo", "show", "tiny-seed3"]) == 0
    out = capsys.readouterr().out
    assert "surrogate:tiny_ft_add@s3" in out and "(not built)" in out
    assert "fingerprint unknown, 6 model(s) not built (glue zoo build tiny-seed3)" in out
