"""benchmarks/floors.py and the floor columns of the linear benchmarks: the roofline picks the
binding resource, the measurements are positive and verified, and a tiny benchmark run writes its
floors (the numbers themselves are not asserted: they are measurements of this machine)."""

import json
import math

from benchmarks import deletion, floors, per_sample_sgd

FAKE = dict(bytes_per_second=1e10, flops_per_second=1e11)  # 10 GB/s, 100 GFLOP/s


def test_roofline_is_the_binding_resource():
    assert floors.roofline(flops=1e11, bytes=1e9, floors=FAKE) == 1.0  # compute bound: 1 s vs 0.1 s
    assert floors.roofline(flops=1e9, bytes=1e11, floors=FAKE) == 10.0  # memory bound: 10 s vs 0.01 s
    assert floors.roofline(floors=FAKE) == 0.0


def test_bandwidth_and_peak_are_measured_positive_numbers():
    bw = floors.bandwidth(2**16, repeats=2)
    mm = floors.matmul_peak(64, repeats=2)
    for value in [v for k, v in bw.items() if k.endswith("_gbs")] + [mm["numpy_gflops"], mm["jax_gflops"]]:
        assert math.isfinite(value) and value > 0
    assert bw["best_gbs"] == max(bw["numpy_copy_gbs"], bw["numpy_add_gbs"], bw["jax_copy_gbs"], bw["jax_triad_gbs"])
    assert floors.measure(quick=True) is floors.measure(quick=True)  # once per process


def test_tiny_linear_benchmarks_write_their_floors(tmp_path):
    per_sample_sgd.main(["--n", "40", "--widths", "16", "200", "--epochs", "2", "--authors-steps", "10",
                         "--quick-floors", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "per_sample_sgd.json").read_text())["rows"]
    for r in rows:
        for key in ("floor_primal_seconds", "floor_dual_seconds", "jax_over_floor", "dual_over_floor",
                    "ratio_primal_over_dual", "gram_over_floor"):
            assert math.isfinite(r[key]) and r[key] > 0, key
    assert rows[0]["dual_aim_met"] is None and isinstance(rows[1]["dual_aim_met"], bool)  # M = 200 >= 4N = 160
    deletion.main(["--sizes", "60", "--ks", "1", "--quick-floors", "--out", str(tmp_path)])
    row = json.loads((tmp_path / "deletion.json").read_text())["rows"][0]
    for key in ("cached_over_hw_floor", "scratch_over_hw_floor", "fit_over_hw_floor"):
        assert math.isfinite(row[key]) and row[key] > 0, key
