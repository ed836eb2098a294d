"""Row-sharded inputs give the one-device results (muso_jax.sharding, issue 6).

tests/conftest.py gives this process four CPU devices (``jax_num_cpu_devices``), so the sharded
comparisons (tests/_sharded_checks.py) run here, on a mesh over those devices; the other tests
of the suite run on the default device, device 0, as before.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, PartitionSpec as P

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


def test_output_shardings(sharded):
    spec = sharded["out_spec"]
    assert spec["gram_shard_map"] == spec["gram_xla"] == "P('rows',)"
    assert spec["min_norm"] == spec["projector"] == "P()"
    assert spec["muso_labels"] == "P('rows',)"  # Phi_f theta_r keeps the rows of phi_f


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
