"""benchmarks/ntk_scale.py at a tiny size on digits: every variant runs, its cost record and
metrics are in the JSON and CSV, the figure is written (the numbers themselves mean nothing here)."""

import json
import math

from benchmarks import ntk_scale


def test_ntk_scale_tiny_run_writes_every_variant(tmp_path):
    out = tmp_path / "o"
    ntk_scale.main(["--data", "digits", "--model", "mlp", "--train-size", "300", "--epochs", "1",
                    "--scenarios", "random:10", "--nystrom", "8", "--cg", "2", "--cache", str(tmp_path / "c"),
                    "--out", str(out)])
    (scenario,) = json.loads((out / "ntk_scale.json").read_text())["scenarios"]
    rows = {r["method"]: r for r in scenario["rows"]}
    assert list(rows) == ["Original", "MUSO (head-only)", "last-layers head", "nystrom m=8", "cg 2 it"]
    assert rows["last-layers head"]["kernel_entries"] == 0 and rows["nystrom m=8"]["kernel_entries"] > 0
    assert rows["cg 2 it"]["iterations"] == 2
    for name, r in rows.items():
        assert math.isfinite(r["avg_gap"]) and r["avg_gap"] >= 0
        if name != "Original":
            assert r["seconds"] > 0 and 0 <= r["compile_s"] <= r["seconds"] and r["RTE_pct"] > 0
    assert len((out / "ntk_scale.csv").read_text().splitlines()) == 1 + len(rows)
    assert (out / "ntk_scale.png").read_bytes()[:4] == b"\x89PNG"
