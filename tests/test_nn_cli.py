"""`muso unlearn` end to end on digits at tiny sizes (the metrics have their own tests)."""

import json

import pytest

from muso_jax import cli


def test_muso_unlearn_end_to_end_and_cache_reuse(tmp_path, capsys):
    args = ["unlearn", "--epochs", "3", "--cache", str(tmp_path / "cache"), "--json", str(tmp_path / "r.json")]
    assert cli.main(args) == 0
    result = json.loads((tmp_path / "r.json").read_text())["runs"][0]
    rows = result["rows"]
    assert set(rows) == {"Original", "Retrain", "MUSO"}
    for key in ("TA", "RA", "FA", "UA", "MIA_entropy", "MIA_efficacy", "avg_gap", "dist_to_retrain"):
        assert key in rows["MUSO"] and key in result["definitions"]
    assert rows["Retrain"]["avg_gap"] == 0.0 and rows["Retrain"]["dist_to_retrain"] == 0.0
    assert rows["MUSO"]["RTE_s"] > 0
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(entries) == 2  # original and retrain
    assert cli.main(args) == 0  # second run: both networks come from the cache
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == entries
    again = json.loads((tmp_path / "r.json").read_text())["runs"][0]["rows"]
    assert again["Original"]["TA"] == rows["Original"]["TA"]
    assert "MUSO labels differing" in capsys.readouterr().out


def test_subclass_scenario_trains_on_super_classes(tmp_path):
    args = ["unlearn", "--epochs", "2", "--scenario", "subclass", "--cls", "3", "--cache", str(tmp_path / "c"),
            "--json", str(tmp_path / "s.json")]
    assert cli.main(args) == 0
    result = json.loads((tmp_path / "s.json").read_text())["runs"][0]
    assert result["classes"] == 5  # the documented digit super-classes
    assert result["n_forget"] > 0 and "MUSO" in result["rows"]


@pytest.mark.parametrize("bad, message", [(["--model", "vgg"], "`model`"), (["--forget", "120"], "`percent`"),
                                          (["--data", "svhn"], "svhn"), (["--scenario", "class", "--cls", "11"], "`cls`")])
def test_muso_unlearn_bad_input_is_a_named_error(bad, message, tmp_path, capsys):
    rc = cli.main(["unlearn", "--epochs", "1", "--cache", str(tmp_path), "--json", str(tmp_path / "x.json"), *bad])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_muso_compare_writes_table_csv_json_and_figure(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = cli.main(["compare", "--epochs", "2", "--methods", "FT", "SalUn", "--cache", str(tmp_path / "c"),
                   "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "compare.json").read_text())["summary"]
    assert list(summary) == ["Original", "Retrain", "MUSO", "FT", "SalUn"]
    assert summary["Retrain"]["avg_gap"]["mean"] == 0.0
    csv = (out / "compare.csv").read_text().splitlines()
    assert csv[0].startswith("method,UA,UA_std") and len(csv) == 6
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["compare", "--methods", "Foo", "--cache", str(tmp_path / "c"), "--out", str(out)]) == 2
    assert "`methods`" in capsys.readouterr().err


def test_compare_tune_selects_on_validation_and_reports_on_the_other_half(tmp_path, capsys):
    out = tmp_path / "t"
    rc = cli.main(["compare", "--epochs", "2", "--methods", "RL", "--tune", "--muso-epochs", "1",
                   "--cache", str(tmp_path / "c"), "--out", str(out)])
    assert rc == 0
    run = json.loads((out / "compare.json").read_text())["runs"][0]
    assert run["tuned"] and run["n_validation"] + run["n_test"] == 359  # digits' held-out images, split in two
    assert set(run["chosen"]) == {"MUSO", "RL"}
    assert run["chosen"]["RL"]["epochs"] in (5, 10, 20)  # from RL's grid around its 10 epochs
    assert "selected on" in capsys.readouterr().out
