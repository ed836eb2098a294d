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
    captured = capsys.readouterr()
    assert "MUSO labels differing" in captured.out
    # stderr is not a terminal here: one plain line per stage, never carriage-return frames.
    assert "\r" not in captured.err


def test_subclass_scenario_trains_on_super_classes(tmp_path):
    args = ["unlearn", "--epochs", "2", "--scenario", "subclass", "--cls", "3", "--cache", str(tmp_path / "c"),
            "--json", str(tmp_path / "s.json")]
    assert cli.main(args) == 0
    result = json.loads((tmp_path / "s.json").read_text())["runs"][0]
    assert result["classes"] == 5  # the documented digit super-classes
    assert result["n_forget"] > 0 and "MUSO" in result["rows"]


@pytest.mark.parametrize("bad, flag, internal", [
    (["--model", "vgg"], "--model", "`model`"),
    (["--forget", "120"], "--forget", "`percent`"),
    (["--data", "svhn"], "--data", "`name`"),
    (["--scenario", "class", "--cls", "11"], "--cls", "`cls`"),
    (["--scenario", "subclass", "--cls", "11"], "--cls", "`fine`"),
    (["--epochs", "0"], "--epochs", "`train.epochs`"),
    (["--muso-epochs", "0"], "--muso-epochs", None),  # was silently replaced by the default
    (["--muso-lr", "0"], "--muso-lr", None),
    (["--seeds", "0"], "--seeds", "`seeds`"),
    (["--seed", "4294967295", "--seeds", "2"], "--seeds", None),  # seed 2**32 would repeat seed 0's key
])
def test_muso_unlearn_bad_input_names_the_flag(bad, flag, internal, tmp_path, capsys):
    rc = cli.main(["unlearn", "--epochs", "1", "--cache", str(tmp_path / "c"), "--json", str(tmp_path / "x.json"),
                   "--compile-cache", str(tmp_path / "jc"), *bad])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"argument {flag}:" in err
    assert internal is None or internal not in err
    # refused before anything is written: no result, no network cache, no compilation cache
    assert not any((tmp_path / name).exists() for name in ("x.json", "c", "jc"))


@pytest.mark.parametrize("command, flag, leaf", [
    (["unlearn"], "--json", "x.json"),
    (["unlearn"], "--cache", "cache"),
    (["compare", "--methods", "FT"], "--out", "cmp"),
])
def test_unwritable_output_fails_first_naming_the_flag(command, flag, leaf, tmp_path, capsys):
    import time

    blocker = tmp_path / "some_file.txt"
    blocker.write_text("not a folder\n")
    paths = {"--cache": tmp_path / "c"}
    paths.update({"--json": tmp_path / "r.json"} if command[0] == "unlearn" else {"--out": tmp_path / "o"})
    paths[flag] = blocker / leaf
    start = time.perf_counter()
    rc = cli.main([*command, "--epochs", "1", *[a for f, p in paths.items() for a in (f, str(p))]])
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert rc == 2 and flag in err and "some_file.txt" in err and "Traceback" not in err
    assert elapsed < 1.0, f"the output check ran after {elapsed:.1f} s of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["some_file.txt"]  # nothing created


def test_muso_compare_writes_table_csv_json_and_figure(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = cli.main(["compare", "--epochs", "2", "--methods", "FT", "SalUn", "--cache", str(tmp_path / "c"),
                   "--out", str(out)])
    assert rc == 0
    (scenario,) = json.loads((out / "compare.json").read_text())["scenarios"]
    summary = scenario["summary"]
    assert scenario["scenario"] == "random 10%"
    assert list(summary) == ["Original", "Retrain", "MUSO", "FT", "SalUn"]
    assert summary["Retrain"]["avg_gap"]["mean"] == 0.0
    assert summary["MUSO"]["avg_gap"]["low"] is None  # one seed: no interval
    assert scenario["paired"]["best"] == "MUSO" and scenario["paired"]["methods"]["MUSO"]["mean"] == 0.0
    csv = (out / "compare.csv").read_text().splitlines()
    assert csv[0] == "scenario,method,metric,mean,ci95_low,ci95_high,std,seeds"
    assert len(csv) == 1 + 5 * len(cli.COMPARE_KEYS)
    assert len((out / "compare_paired.csv").read_text().splitlines()) == 1 + 4  # Retrain is the reference
    assert "| MUSO |" in (out / "compare.md").read_text()
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["compare", "--methods", "Foo", "--cache", str(tmp_path / "c"), "--out", str(out)]) == 2
    assert "argument --methods:" in capsys.readouterr().err


def test_compare_several_scenarios_and_seeds_with_intervals_and_one_selection(tmp_path, capsys):
    """Two scenarios x two seeds, tuned: seed 0 selects (on the validation half), seed 1 reuses its
    choice; the intervals and the paired differences are the stats module's on the per-seed rows."""
    from muso_jax import stats

    out = tmp_path / "s"
    rc = cli.main(["compare", "--epochs", "2", "--methods", "RL", "--scenarios", "random:10", "class:3",
                   "--seeds", "2", "--unlearn-epochs", "1", "--tune", "--cache", str(tmp_path / "c"),
                   "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "compare.json").read_text())["scenarios"]
    assert [r["scenario"] for r in results] == ["random 10%", "class 3"]
    for res in results:
        first, second = res["runs"]
        assert first["tuned"] and not second["tuned"] and second["n_validation"] == first["n_validation"] > 0
        assert len(first["searched"]["RL"]) == 3  # lr only: the epochs are the fixed budget
        assert second["chosen"] == first["chosen"] and first["chosen"]["RL"]["epochs"] == 1
        gaps = [r["rows"]["RL"]["avg_gap"] for r in res["runs"]]
        iv = stats.mean_interval(gaps)
        assert abs(res["summary"]["RL"]["avg_gap"]["low"] - iv.low) < 1e-12
        best = res["paired"]["best"]
        d = stats.paired_difference(gaps, [r["rows"][best]["avg_gap"] for r in res["runs"]])
        assert abs(res["paired"]["methods"]["RL"]["high"] - d.high) < 1e-12
        assert res["runs"][0]["rows"]["RL"]["RTE_pct"] > 0
    printed = capsys.readouterr().out
    assert "== class 3 ==" in printed and "the gap to close" in printed and "selected on seed 0" in printed


@pytest.mark.parametrize("bad, flag", [
    (["--scenarios", "random"], "--scenarios"),
    (["--scenarios", "class:x"], "--scenarios"),
    (["--scenarios", "random:10", "random:10"], "--scenarios"),
    (["--scenarios", "class:12"], "--scenarios"),  # the class came from --scenarios
    (["--scenarios", "random:10", "subclass:11"], "--scenarios"),
    (["--scenarios", "random:120"], "--scenarios"),
    (["--unlearn-epochs", "1", "--muso-epochs", "2"], "--unlearn-epochs"),  # both set MUSO's epochs
    (["--ntk-budget", "0"], "--ntk-budget"),
    (["--unlearn-epochs", "0"], "--unlearn-epochs"),
    (["--train-size", "0"], "--train-size"),
])
def test_compare_bad_scenarios_and_budgets_are_refused_before_training(bad, flag, tmp_path, capsys):
    out = tmp_path / "o"
    rc = cli.main(["compare", "--methods", "FT", "--cache", str(tmp_path / "c"), "--out", str(out),
                   "--compile-cache", str(tmp_path / "jc"), *bad])
    err = capsys.readouterr().err
    assert rc == 2 and f"argument {flag}:" in err and "Traceback" not in err
    assert "`" not in err  # every internal argument name was translated to its flag
    assert not any((tmp_path / name).exists() for name in ("c", "jc", "o"))  # nothing written


def test_compare_tune_selects_on_validation_and_reports_on_the_other_half(tmp_path, capsys):
    out = tmp_path / "t"
    rc = cli.main(["compare", "--epochs", "2", "--methods", "RL", "--tune", "--muso-epochs", "1",
                   "--cache", str(tmp_path / "c"), "--out", str(out)])
    assert rc == 0
    run = json.loads((out / "compare.json").read_text())["scenarios"][0]["runs"][0]
    assert run["tuned"] and run["n_validation"] + run["n_test"] == 359  # digits' held-out images, split in two
    assert set(run["chosen"]) == {"MUSO", "RL"}
    assert run["chosen"]["RL"]["epochs"] in (5, 10, 20)  # from RL's grid around its 10 epochs
    assert "selected on" in capsys.readouterr().out


def test_muso_audit_end_to_end_on_four_models(tmp_path, capsys):
    out = tmp_path / "a"
    rc = cli.main(["audit", "--shadows", "4", "--epochs", "1", "--muso-epochs", "1", "--methods", "GA",
                   "--compile-cache", "none", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "audit.json").read_text())
    assert list(res["rows"]) == ["Original", "Retrain (independent seeds)", "MUSO", "GA"]
    for row in res["rows"].values():
        assert 0 <= row["auc_low"] <= row["auc"] <= row["auc_high"] <= 1
        assert 0 <= row["epsilon_quality"] <= 1 and row["vmapped"]
    assert set(res["ranks"]) == {"MUSO", "GA"} and res["shadows"] == 4
    assert len(res["epsilons"]["MUSO"]) == res["n_forget"]
    header = (out / "audit.csv").read_text().splitlines()[0]
    assert header.startswith("method,avg_gap,UA,MIA_efficacy,auc")
    assert (out / "audit.png").stat().st_size > 10_000 and (out / "audit.md").read_text().startswith("| method")
    assert "U-LiRA AUC" in capsys.readouterr().out


@pytest.mark.parametrize("bad, flag", [
    (["--shadows", "3"], "--shadows"),
    (["--seeds", "2"], "--seeds"),
    (["--methods", "XX"], "--methods"),
    (["--forget", "0"], "--forget"),
    (["--ntk-budget", "0"], "--ntk-budget"),
])
def test_muso_audit_bad_input_is_refused_before_training(bad, flag, tmp_path, capsys):
    out = tmp_path / "a"
    rc = cli.main(["audit", "--out", str(out), "--compile-cache", str(tmp_path / "jc"), *bad])
    err = capsys.readouterr().err
    assert rc == 2 and f"argument {flag}:" in err and "Traceback" not in err and "`" not in err
    assert not out.exists() and not (tmp_path / "jc").exists()  # nothing written
