"""Row-sharded inputs give the one-device results (muso_jax.sharding, issue 6).

tests/conftest.py gives this process four CPU devices (``jax_num_cpu_devices``), so the sharded
comparisons (tests/_sharded_checks.py) run here, on a mesh over those devices; the other tests
of the suite run on the default device, device 0, as before.
"""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P, SingleDeviceSharding

import muso_jax as mj

from muso_jax import sharding as sh
from _sharded_checks import checks
from helpers import problem

# Closed forms: the partitioned program splits the sums of Phi theta0, Phi Phi^T and
# Phi^T alpha across devices, which reorders float64 additions; on these well-conditioned
# problems (Gram condition ~10) that moves results by a few ulp (measured ~5e-16), so 1e-12
# leaves a wide margin while still catching any real error (wrong rows, lost shards: O(1)).
CLOSED_FORM_RTOL = 1e-12
# SGD replays the same arithmetic (same sample order, same steps); only full-batch GD sums
# Phi^T r across devices. 1e-12 covers 200 contracting GD steps of ulp-level differences.
SGD_RTOL = 1e-12


@pytest.fixture(scope="module")
def sharded():
    cpus = jax.devices("cpu")  # four CPU devices even on a GPU/TPU host, where jax.devices() are those
    assert len(cpus) == 4, "tests/conftest.py sets jax_num_cpu_devices = 4"
    with jax.default_device(cpus[0]):  # the one-device reference on a CPU too
        return checks(sh.row_mesh(cpus))


def test_inputs_are_really_row_sharded(sharded):
    assert sharded["devices"] == 4
    inputs = sharded["inputs"]
    assert inputs["phi_spec"] == "P('rows',)" and inputs["y_spec"] == "P('rows',)"
    assert inputs["phi_shards"] == 4 and inputs["phi_shard_devices"] == 4
    assert inputs["phi_shard_shapes"] == [(16, 256)]  # 64 rows / 4 devices, all 256 features
    assert inputs["phi_shard_rows"] == [0, 16, 32, 48]
    assert inputs["theta0_spec"] == "P()" and inputs["theta0_shards"] == 4


@pytest.mark.parametrize(
    "name",
    ["gram_shard_map", "gram_xla", "min_norm", "min_norm_multi_output", "min_norm_ridge", "min_norm_where",
     "muso_labels", "projector", "min_norm_padded_where"],
)
def test_closed_forms_match_one_device(sharded, name):
    assert sharded["rel"][name] <= CLOSED_FORM_RTOL


@pytest.mark.parametrize("name", ["sgd_per_sample", "sgd_minibatch", "sgd_full_batch"])
def test_sgd_matches_one_device(sharded, name):
    assert sharded["rel"][name] <= SGD_RTOL
    assert sharded["out_spec"][name] == "P()"  # theta comes back whole on every device


@pytest.mark.parametrize(
    "name",
    ["gram_shard_map", "sh_min_norm", "sh_min_norm_multi_output", "sh_min_norm_ridge", "sh_min_norm_retain",
     "sh_muso_labels"],
)
def test_ungathered_closed_forms_match_one_device(sharded, name):
    assert sharded["rel"][name] <= CLOSED_FORM_RTOL


@pytest.mark.parametrize("name", ["sgd_per_sample", "sgd_minibatch", "sgd_full_batch"])
def test_ungathered_sgd_matches_the_one_device_primal_run(sharded, name):
    # The dual form on the ring Gram against the primal form on one device: the same iterates,
    # the same number of steps; the dual form reorders the sums (G alpha vs Phi theta), so 1e-12
    # as for SGD above (measured ~1e-15).
    assert sharded["rel"]["sh_" + name] <= SGD_RTOL
    steps_sharded, steps_one = sharded["sh_sgd_steps"][name]
    assert steps_sharded == steps_one > 0
    assert sharded["out_spec"]["sh_" + name] == "P()"


def test_output_shardings(sharded):
    spec = sharded["out_spec"]
    assert spec["gram_shard_map"] == spec["gram_xla"] == "P('rows',)"
    assert spec["min_norm"] == spec["projector"] == "P()"
    assert spec["muso_labels"] == "P('rows',)"  # Phi_f theta_r keeps the rows of phi_f
    assert spec["sh_min_norm"] == "P()" and spec["sh_muso_labels"] == "P('rows',)"


def test_indivisible_rows_are_rejected_with_the_counts(sharded):
    msg = sharded["indivisible_error"]
    assert msg is not None
    assert "`phi`" in msg and "divisible by the 4 devices" in msg and "got 62 rows" in msg


def test_from_local_rows_on_one_process_equals_shard_rows(sharded):
    assert sharded["from_local_rows"] == {"spec": "P('rows',)", "shape": [64, 256], "equal": True}


# The mesh over the default devices, and the argument checks.


def test_row_mesh_is_auto_over_all_devices():
    mesh = sh.row_mesh()
    assert mesh.axis_names == ("rows",)
    assert mesh.axis_types == (AxisType.Auto,)
    assert mesh.size == jax.device_count()


def test_shard_rows_and_replicate_keep_values():
    mesh = sh.row_mesh()
    p = problem(0, 12, 40)
    phi_s, theta_s = sh.shard_rows(p.phi, mesh, name="phi"), sh.replicate(p.theta0, mesh)
    assert phi_s.sharding.spec == P("rows") and theta_s.sharding.spec == P()
    np.testing.assert_array_equal(np.asarray(phi_s), np.asarray(p.phi))
    np.testing.assert_array_equal(np.asarray(theta_s), np.asarray(p.theta0))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda phi: sh.shard_rows(phi, jax.make_mesh((1,), ("rows",))), "axis 'rows' of type Auto"),
        (lambda phi: sh.shard_rows(phi, jax.make_mesh((1,), ("data",), axis_types=(AxisType.Auto,))),
         "mesh axis named 'rows'"),
        (lambda phi: sh.replicate(phi, "rows"), "argument `mesh`: expected a jax.sharding.Mesh"),
        (lambda phi: sh.shard_rows(phi[0, 0], sh.row_mesh(), name="phi"),
         "argument `phi`: expected an array with a leading row axis"),
        (lambda phi: sh.gram(phi[0], sh.row_mesh()), "argument `phi`: expected a \\(N, M\\) feature matrix \\(2-D\\)"),
        (lambda phi: sh.row_mesh([]), "argument `devices`"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(problem(0, 12, 40).phi)


def test_gram_jit_and_vmap():
    mesh = sh.row_mesh()
    phis = jnp.stack([problem(s, 12, 40).phi for s in (0, 1)])
    eager = sh.gram(phis[0], mesh)
    # 1e-12: the same dot products in a possibly different blocking; entries are O(1).
    np.testing.assert_allclose(eager, phis[0] @ phis[0].T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(jax.jit(sh.gram, static_argnums=1)(phis[0], mesh), eager, rtol=0, atol=1e-12)
    batched = jax.vmap(sh.gram, (0, None))(phis, mesh)
    np.testing.assert_allclose(batched, jnp.stack([sh.gram(p, mesh) for p in phis]), rtol=0, atol=1e-12)


# Per-device memory of the compiled programs (XLA's memory analysis), at a size where Phi
# dominates: N = 256, M = 8192, Phi = 16.8 MB against G = 0.5 MB. Compiled from abstract inputs
# only, never run. One device: the same computation on one CPU device.
MEM_N, MEM_M = 256, 8192
# Per device the sharded programs hold Phi / 4 (its row block), the ring's column chunks in
# flight (own, travelling, received: 3 of Phi / 32, RING_CHUNKS = 8) and N^2-sized terms (G,
# 3% of Phi): 0.25 + 0.094 + 0.03 = 0.37 of the one-device footprint, which is Phi plus the
# same N^2 terms. A program that gathers Phi holds at least a whole Phi on each device (>= 1).
MEM_RATIO = 0.4
# The arguments alone: Phi / 4 + y / 4 + theta0 (M numbers, 1/N of Phi, replicated).
ARG_RATIO = 0.25 + 1.0 / MEM_N


@pytest.fixture(scope="module")
def memory():
    cpus = jax.devices("cpu")
    mesh = sh.row_mesh(cpus)
    rows, whole, one = NamedSharding(mesh, P("rows")), NamedSharding(mesh, P()), SingleDeviceSharding(cpus[0])
    n, m, nr = MEM_N, MEM_M, 3 * MEM_N // 4
    key = jax.random.key(0)

    def spec(shape, where):
        return jax.ShapeDtypeStruct(shape, jnp.float64, sharding=where)

    programs = {  # name: (sharded program, one-device program, argument shapes)
        "gram": (lambda p: sh.gram(p, mesh), lambda p: p @ p.T, [(n, m)]),
        "min_norm": (lambda p, y, t: sh.sharded_min_norm_solution(p, y, t, mesh), mj.min_norm_solution,
                     [(n, m), (n,), (m,)]),
        "muso_labels": (lambda pr, yr, pf, t: sh.sharded_muso_labels(pr, yr, pf, t, mesh), mj.muso_labels,
                        [(nr, m), (nr,), (n - nr, m), (m,)]),
        "sgd": (lambda p, y, t: sh.sharded_sgd(key, p, y, t, mesh, max_epochs=2, tol=0.0)[0],
                lambda p, y, t: mj.sgd(key, p, y, t, max_epochs=2, tol=0.0, form="dual")[0],
                [(n, m), (n,), (m,)]),
    }
    out = {}
    for name, (sharded, single, shapes) in programs.items():
        sharded_in = [spec(s, whole if s == (m,) else rows) for s in shapes]
        c_sharded = jax.jit(sharded).lower(*sharded_in).compile()
        c_one = jax.jit(single).lower(*[spec(s, one) for s in shapes]).compile()
        a, b = c_sharded.memory_analysis(), c_one.memory_analysis()
        gathered = [int(np.prod([int(d) for d in dims.split(",") if d]))
                    for dims in re.findall(r"= f64\[([\d,]*)\]\S* all-gather\(", c_sharded.as_text())]
        out[name] = dict(args=(a.argument_size_in_bytes, b.argument_size_in_bytes),
                         total=(a.argument_size_in_bytes + a.temp_size_in_bytes,
                                b.argument_size_in_bytes + b.temp_size_in_bytes),
                         largest_gather=max(gathered, default=0))
    return out


@pytest.mark.parametrize("name", ["gram", "min_norm", "muso_labels", "sgd"])
def test_sharded_programs_hold_a_quarter_of_phi_per_device(memory, name):
    rec = memory[name]
    sharded_args, one_args = rec["args"]
    assert sharded_args <= ARG_RATIO * one_args
    sharded_total, one_total = rec["total"]
    assert sharded_total <= MEM_RATIO * one_total, rec
    # Nothing Phi-sized travels whole: the largest all-gather is the N x N Gram (for the solve).
    assert rec["largest_gather"] <= MEM_N * MEM_N, rec


def test_two_processes_with_jax_distributed():
    """The multi-host recipe of docs/multi_device.md, on one machine: two processes of two CPU
    devices each, each passing its own rows; Phi spans devices no process can read."""
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    script = Path(__file__).with_name("_two_process_sharding.py")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env["JAX_PLATFORMS"] = "cpu"
    procs = [subprocess.Popen([sys.executable, str(script), str(pid), str(port)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for pid in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    results = []
    for p, text in zip(procs, outs):
        assert p.returncode == 0, text[-3000:]
        results.append(json.loads(next(line for line in text.splitlines() if line.startswith("RESULT "))[7:]))
    assert [r["rows"] for r in results] == [[0, 16], [32, 48]]  # process p holds rows 32p:32p+32
    for r in results:
        assert r["devices"] == 4 and r["local_devices"] == 2 and not r["phi_fully_addressable"]
        assert r["sgd_steps"] == 640  # 10 epochs of 64 samples, as on one device
        # 1e-12 as CLOSED_FORM_RTOL and SGD_RTOL above (measured <= 3e-15).
        assert max(r["rel"].values()) <= CLOSED_FORM_RTOL, r
