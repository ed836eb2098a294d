"""Every verification runs at tiny sizes, passes and writes its files; broken formulas FAIL."""

import json

import jax
import pytest

import muso_jax
import proofs_numeric
from muso_jax import cli


@pytest.mark.parametrize("name", proofs_numeric.MODULES)
def test_each_verification_passes_and_writes_its_files(name, tmp_path):
    module = __import__(f"proofs_numeric.{name}", fromlist=["main"])
    result = module.main(jax.random.key(1), tmp_path, size="quick")
    assert result.name == name and result.passed, result.summary
    for suffix in (".png", ".json", ".md"):
        assert (tmp_path / f"{name}{suffix}").stat().st_size > 0
    record = json.loads((tmp_path / f"{name}.json").read_text())
    assert record["passed"] is True and record["measured"] and record["rows"]
    assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert f"![{result.title}]({name}.png)" in (tmp_path / f"{name}.md").read_text()


def test_labels_from_the_wrong_model_fail_exact_unlearning(tmp_path, monkeypatch):
    """Break the formula: label D_f with the outputs of the wrong model (theta0 instead of
    theta_r), and separately with labels off by 1e-6. The exactness check must say FAIL."""
    from proofs_numeric import exact_unlearning

    honest = muso_jax.unlearn.relabel

    def wrong_model(key, method, phi_r, y_r, phi_f, y_f, theta0, *, ridge=0.0):
        return phi_f @ theta0

    def slightly_off(key, method, phi_r, y_r, phi_f, y_f, theta0, *, ridge=0.0):
        return honest(key, method, phi_r, y_r, phi_f, y_f, theta0, ridge=ridge) + 1e-6

    monkeypatch.setattr(muso_jax.unlearn, "relabel", wrong_model)
    result = exact_unlearning.main(jax.random.key(1), tmp_path, size="quick")
    # Labels of theta0's model are O(1) wrong: the gap stays O(1), far above the proof's 1e-9.
    assert not result.passed and result.measured["worst_rel_gap"] > 1e-2
    monkeypatch.setattr(muso_jax.unlearn, "relabel", slightly_off)

    result = exact_unlearning.main(jax.random.key(1), tmp_path, size="quick")
    assert not result.passed
    # Labels off by 1e-6 move the limit by ~1e-6 / s_min: a relative gap of order 1e-6, above
    # the proof's threshold (exactness_unlearning.TOL = 1e-9) that an exact run meets.
    assert result.measured["worst_rel_gap"] > 1e-9


def test_a_non_projector_fails_and_verify_exits_nonzero(tmp_path, monkeypatch, capsys):
    """The authors' latest public projector is not idempotent; any such slip must FAIL."""
    honest = muso_jax.projector
    monkeypatch.setattr(muso_jax, "projector", lambda phi_r, ridge=0.0: honest(phi_r, ridge=ridge) * (1 + 1e-6))
    monkeypatch.setattr(proofs_numeric, "MODULES", ("projector_form",))
    rc = cli.main(["verify", "--quick", "--out", str(tmp_path)])
    assert rc == 1
    out = capsys.readouterr().out
    assert "projector_form       FAIL" in out
    assert "FAIL" in (tmp_path / "report.md").read_text()
