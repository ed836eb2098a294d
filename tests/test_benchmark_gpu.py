"""benchmarks/gpu.py, the GPU benchmark, runs on the CPU at its tiny size: every field of its JSON
is there and sane (the timings themselves mean nothing on a CPU)."""

import json
import math

import jax

from benchmarks import gpu


def test_gpu_benchmark_tiny_run_writes_checked_numbers(tmp_path):
    out = tmp_path / "gpu.json"
    # tiny: automatic on a CPU; bfloat16 skipped (its CPU compile doubles the test's time; the
    # bf16 path of the models is tested in tests/test_nn_layers.py and tests/test_nn_train.py)
    returned = gpu.main(["--out", str(out), "--skip-bf16"])
    data = json.loads(out.read_text())
    assert data["benchmark"] == "gpu" and data["tiny"] is True
    assert data["platform"] == jax.devices()[0].platform == "cpu" and data["device_kind"]
    assert data["n"] == gpu.TINY["n"] and data["width"] == gpu.TINY["width"] and data["model"] == "resnet18"
    assert data["accuracy_check_passed"] is True and data["failures"] == []
    assert 1 / gpu.NUM_CLASSES < data["min_accuracy"] < 1
    assert data["seconds"] > 0 and data["n"] == returned["n"]
    assert data["jax_version"] == jax.__version__ and data["flax_version"] and data["optax_version"]

    f32, bf16 = data["precisions"]
    assert f32["precision"] == "float32" and f32["available"] is True
    assert bf16["precision"] == "bfloat16"
    rows = [f32] + ([bf16] if bf16["available"] else [])
    if not bf16["available"]:
        assert bf16["reason"] == "skipped (--skip-bf16)"
        assert data["speedup_bfloat16_over_float32"] is None
    for r in rows:
        assert len(r["epochs"]) == gpu.TINY["epochs"]
        assert all(e["seconds"] > 0 and e["images_per_second"] > 0 and math.isfinite(e["loss"]) for e in r["epochs"])
        assert r["steady_images_per_second"] > 0 and r["steady_epoch_seconds"] > 0
        assert r["compile_seconds"] is not None and r["backend_compile_seconds"] > 0 and r["programs_compiled"] >= 1
        assert r["accuracy_check_passed"] is True and r["losses_finite"] is True
        assert data["min_accuracy"] <= r["train_accuracy"] <= 1
        # The CPU backend has no memory statistics; a GPU has both numbers.
        assert (r["peak_bytes_in_use"] is None) == (data["platform"] == "cpu")

    m = data["muso_vs_retrain"]
    assert m["forget_rows"] == round(gpu.FORGET_SHARE * data["n"]) and m["forget_rows"] + m["retain_rows"] == data["n"]
    assert m["muso_seconds"] > 0 and m["retrain_seconds"] > 0 and m["muso_cold_one_epoch_seconds"] > 0
    assert math.isclose(m["ratio_muso_over_retrain"], m["muso_seconds"] / m["retrain_seconds"])
    assert m["accuracy_check_passed"] is True and m["losses_finite"] is True
    assert all(math.isfinite(v) for v in m["muso_losses"]) and len(m["muso_losses"]) == m["muso_config"]["epochs"]
    # Retraining reuses the program the original training compiled.
    assert m["retrain_programs_compiled"] < f32["programs_compiled"]
