"""The shadow-model benchmark runs at a tiny size and checks its answers before timing."""


def test_shadow_benchmark_smoke(tmp_path):
    from benchmarks import shadows

    paths, rows = shadows.main(["--models", "2", "--epochs", "1", "--fmnist-size", "0", "--out", str(tmp_path)])
    assert [r["case"].split(": ")[1] for r in rows] == ["train 1 epochs", "MUSO (2 epochs)", "RL (2 epochs)"]
    for r in rows:
        assert r["max_rel_diff"] < 1e-4 and r["vmap_seconds"] > 0 and r["ratio_loop_over_vmap"] > 0
    assert paths[0].exists()
