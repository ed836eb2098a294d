"""The over/under-parameterized transition: gap to theta_r versus M/N for MUSO and the baselines.

    python -m proofs_numeric.phase_transition [--size quick|default|full] [--seed S] [--out DIR]
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

import muso_jax as mj
from proofs_numeric import _common as c

RATIOS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0)
SIZES = dict(quick=dict(n=16, epochs=300), default=dict(n=40, epochs=2000), full=dict(n=80, epochs=5000))
EXACT = 1e-8  # MUSO's relative gap where the theorem applies (M >= 2N: well-conditioned)
MISS = 1e-2
LR, DECAY = 1.0, 0.2  # per-sample SGD with the authors' schedule; unit-norm RFF rows


def _run_ratio(key, n, m, epochs):
    forget = np.arange(n) >= (3 * n) // 4  # N_r = 3N/4
    k_prob, k_p, k_lab, k_sgd = jax.random.split(key, 4)
    phi, y, theta0 = c.rff_problem(k_prob, n, m)
    phi_r, y_r, phi_f, y_f = phi[~forget], y[~forget], phi[forget], y[forget]
    with warnings.catch_warnings():  # the under-parameterized warnings are the point here
        warnings.simplefilter("ignore", mj.UnderParameterizedWarning)
        theta_r = mj.min_norm_solution(phi_r, y_r, theta0)  # least squares when N_r > M
        theta_p_limit = mj.min_norm_solution(phi, y, theta0)
    sgd_kw = dict(lr=LR, decay=DECAY, tol=1e-12, max_epochs=epochs)
    theta_p, _ = mj.sgd(k_p, phi, y, theta0, **sgd_kw)
    targets, masks = [], []
    for i, method in enumerate(mj.METHODS):
        labels = mj.relabel(jax.random.fold_in(k_lab, i), method, phi_r, y_r, phi_f, y_f, theta0)
        targets.append(y if labels is None else y.at[np.flatnonzero(forget)].set(labels))
        masks.append(~forget if labels is None else np.ones(n, bool))
    targets, masks = jnp.stack(targets), jnp.asarray(np.stack(masks))
    # All methods at once: same shapes, so one compiled SGD vmapped over the labelings.
    sgd_all = jax.vmap(lambda t, w: mj.sgd(k_sgd, phi, t, theta_p, retain=w, **sgd_kw)[0])
    thetas = sgd_all(targets, masks)
    scale = jnp.linalg.norm(theta_p - theta_r)
    gaps_sgd = np.asarray(jnp.linalg.norm(thetas - theta_r[None], axis=1) / scale)

    def limit(t, w):  # the gradient-descent limit from theta_p_limit (least squares if no interpolant)
        return mj.min_norm_solution(phi, t, theta_p_limit, retain=w)

    gaps_limit = np.asarray(jnp.linalg.norm(jax.vmap(limit)(targets, masks) - theta_r[None], axis=1)
                            / jnp.linalg.norm(theta_p_limit - theta_r))
    cond = float(np.linalg.cond(np.asarray(phi)) ** 2)
    return gaps_sgd, gaps_limit, cond


def main(key, out, size: str = "default") -> c.Result:
    s = SIZES[size]
    n = s["n"]
    rows, sgd_gaps, limit_gaps, conds, ms = [], [], [], [], []
    for i, ratio in enumerate(RATIOS):
        m = max(2, 2 * round(ratio * n / 2))
        g_sgd, g_lim, cond = _run_ratio(jax.random.fold_in(key, i), n, m, s["epochs"])
        ms.append(m), sgd_gaps.append(g_sgd), limit_gaps.append(g_lim), conds.append(cond)
        rows.append(dict(M_over_N=m / n, M=m, gram_cond=cond,
                         **{f"{meth}_sgd": float(g) for meth, g in zip(mj.METHODS, g_sgd)},
                         muso_limit=float(g_lim[0])))
    sgd_gaps, limit_gaps = np.array(sgd_gaps), np.array(limit_gaps)
    x = np.array(ms) / n
    fig, (a1, a2) = c.figure(2)
    for j, meth in enumerate(mj.METHODS):
        a1.loglog(x, np.maximum(sgd_gaps[:, j], 1e-17), "o-", label=meth)
    a1.loglog(x, np.maximum(limit_gaps[:, 0], 1e-17), "k--", label="muso, exact GD limit")
    a1.axvline(1.0, color="gray", linestyle=":")
    a1.axvline(0.75, color="gray", linestyle="--", linewidth=0.8)
    a1.set(xlabel="M / N  (dotted: M = N; dashed: M = N_r)", ylabel=r"$\|\theta_u - \theta_r\| / \|\theta_p - \theta_r\|$",
           title=f"per-sample SGD, {s['epochs']} epochs max, N={n}, N_r={3 * n // 4}")
    a1.legend(fontsize=7)
    a2.loglog(x, conds, "s-")
    a2.set(xlabel="M / N", ylabel=r"condition number of $\Phi\Phi^\top$ (or $\Phi^\top\Phi$)",
           title="conditioning peaks at the interpolation threshold")
    for ax in (a1, a2):
        ax.minorticks_off()
        ax.set_xticks(x, [f"{v:g}" for v in x], fontsize=8)
    over = x >= 2.0
    muso_ok = bool(np.all(sgd_gaps[over, 0] <= EXACT))
    others_miss = bool(np.all(sgd_gaps[over, 1:] >= MISS))
    below = x < 1.0
    passed = muso_ok and others_miss
    limit_exact_below = bool(np.all(limit_gaps[below, 0] <= 1e-6))
    return c.finish(
        out, fig,
        name="phase_transition",
        title="Over- versus under-parameterized",
        statement="With more features than points (M > N) MUSO's fine-tuning reaches theta_r and every baseline "
                  "misses it. Below that, the theorem's premise fails: there is no interpolant of D.",
        formula=r"exactness needs $\mathrm{rank}\,\Phi = N \le M$; the gap is plotted against $M/N \in [0.25, 8]$",
        why="Over-parameterized, the relabeled data have a unique interpolant in theta0 + row(Phi): theta_r. Under-"
            "parameterized, SGD on inconsistent data does not converge (a noise floor set by the step), and "
            "conditioning collapses near M = N_r and M = N. Measured finding: the premise is sufficient, not "
            "necessary. Where Phi has full column rank, the gradient-descent LIMIT with MUSO labels is still theta_r "
            "(theta_r minimizes the relabeled loss); per-sample SGD approaches it for M >= N_r (consistent labels) but "
            "slowly where the Gram is ill-conditioned (at M = N it had not converged after 20,000 epochs, Gram "
            "condition ~3e4), and for M < N_r fine-tuning on D_r alone has the same GD limit.",
        tolerance=f"for M/N >= 2: MUSO <= {EXACT:g} and every baseline >= {MISS:g} (per-sample SGD); "
                  "the under-parameterized side is measured and reported, not pass/fail",
        measured=dict(muso_sgd_gap_at_M_eq_2N=float(sgd_gaps[list(x).index(2.0), 0]),
                      muso_sgd_gap_at_quarter=float(sgd_gaps[0, 0]),
                      muso_limit_gap_max_below_N=float(np.max(limit_gaps[below, 0])),
                      limit_exact_below_N=limit_exact_below),
        passed=passed,
        summary=(f"MUSO SGD gap {sgd_gaps[list(x).index(2.0), 0]:.1e} at M=2N, {sgd_gaps[0, 0]:.1e} at M=N/4; "
                 f"exact GD limit below M=N: max {np.max(limit_gaps[below, 0]):.1e}"),
        rows=rows,
    )


if __name__ == "__main__":
    from proofs_numeric._cli import run_one

    run_one(main)
