"""Projector form of the MUSO labels; P_r is an orthogonal projector.

    python -m proofs_numeric.projector_form [--size quick|default|full] [--seed S] [--out DIR]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import muso_jax as mj
from proofs_numeric import _common as c

SIZES = dict(quick=dict(n=12, m=40, seeds=2), default=dict(n=60, m=300, seeds=8), full=dict(n=200, m=1000, seeds=16))
TOL = 1e-10  # exact identities through one Cholesky at Gram condition ~ 3: far above round-off
RIDGE_SHOWN = 0.1


def main(key, out, size: str = "default") -> c.Result:
    s = SIZES[size]
    n, m = s["n"], s["m"]
    forget = np.arange(n) >= (2 * n) // 3
    nr = int(np.sum(~forget))

    @jax.vmap
    def one_seed(k):
        phi, y, theta0 = c.rff_problem(k, n, m)
        phi_r, phi_f = phi[~forget], phi[forget]
        theta_p = mj.min_norm_solution(phi, y, theta0)  # interpolates D, hence D_r
        direct = mj.muso_labels(phi_r, y[~forget], phi_f, theta0)
        P = mj.projector(phi_r)
        explicit = phi_f @ (theta0 + P @ (theta_p - theta0))
        eig = jnp.linalg.eigvalsh(P)
        scale = jnp.linalg.norm(direct)
        return dict(
            projector_labels=jnp.linalg.norm(mj.projector_labels(phi_r, phi_f, theta0, theta_p) - direct) / scale,
            explicit_P=jnp.linalg.norm(explicit - direct) / scale,
            asymmetry=jnp.max(jnp.abs(P - P.T)),
            idempotency=jnp.linalg.norm(P @ P - P) / jnp.linalg.norm(P),
            eig_off_01=jnp.max(jnp.minimum(jnp.abs(eig), jnp.abs(1.0 - eig))),
            rank=jnp.sum(eig > 0.5),
            eig=eig,
            eig_ridge=jnp.linalg.eigvalsh(mj.projector(phi_r, ridge=RIDGE_SHOWN)),
            s2=jnp.linalg.svd(phi_r, compute_uv=False) ** 2,
        )

    res = jax.tree.map(np.asarray, one_seed(jax.random.split(key, s["seeds"])))
    keys = ("projector_labels", "explicit_P", "asymmetry", "idempotency", "eig_off_01")
    rows = [dict(seed=i, **{k: float(res[k][i]) for k in keys}, rank=int(res["rank"][i])) for i in range(s["seeds"])]
    worst = {k: float(np.max(res[k])) for k in keys}
    fig, (a1, a2) = c.figure(2)
    a1.semilogy(np.arange(1, m + 1), np.maximum(res["eig"][0][::-1], 1e-18), ".", ms=3, label=r"$P_r$ (ridge 0)")
    a1.semilogy(np.arange(1, m + 1), np.maximum(res["eig_ridge"][0][::-1], 1e-18), ".", ms=3,
                label=f"ridge {RIDGE_SHOWN:g}")
    a1.axvline(nr, color="gray", linestyle=":", label=f"N_r = {nr}")
    a1.set(xlabel="eigenvalue index (descending)", ylabel="eigenvalue (clipped at 1e-18)",
           title="spectrum of the projector: N_r ones, then zeros")
    a1.legend(fontsize=8)
    s2 = np.sort(res["s2"][0])[::-1]
    a2.plot(s2, np.sort(res["eig_ridge"][0])[::-1][:nr], "o", ms=4, label="measured")
    grid = np.linspace(s2.min(), s2.max(), 100)
    a2.plot(grid, grid / (grid + RIDGE_SHOWN), "-", label=r"$s/(s+\epsilon)$")
    a2.set(xlabel=r"eigenvalue $s$ of $\Phi_r\Phi_r^\top$", ylabel="eigenvalue of the ridge 'projector'",
           title=f"ridge {RIDGE_SHOWN:g} shrinks the ones to s/(s+eps)")
    a2.legend(fontsize=8)
    passed = all(v <= TOL for v in worst.values()) and all(r["rank"] == nr for r in rows)
    return c.finish(
        out, fig,
        name="projector_form",
        title="Projector form of the labels",
        statement="When theta_p interpolates the retained data, the MUSO labels need only theta0, theta_p and the "
                  "projector onto the row space of Phi_r; that projector is symmetric, idempotent, with "
                  "eigenvalues 0 and 1.",
        formula=r"$\hat y_f = \Phi_f[\theta_0 + P_r(\theta_p - \theta_0)],\quad P_r = \Phi_r^\top"
                r"(\Phi_r\Phi_r^\top)^{-1}\Phi_r,\quad P_r = P_r^\top = P_r^2$",
        why="P_r (theta_p - theta0) = Phi_r^T G_r^{-1} Phi_r (theta_p - theta0) = Phi_r^T G_r^{-1} (y_r - Phi_r theta0) "
            "because Phi_r theta_p = y_r: exactly the step from theta0 to theta_r. P_r^2 = P_r since "
            "Phi_r Phi_r^T G_r^{-1} = I; its eigenvalues are 1 on row(Phi_r) (N_r of them) and 0 elsewhere.",
        tolerance=f"every identity holds to {TOL:g} (relative; absolute for symmetry and spectrum) on every seed, "
                  "and rank(P_r) = N_r",
        measured=dict(worst, seeds=s["seeds"]),
        passed=passed,
        summary=", ".join(f"{k} {v:.1e}" for k, v in worst.items()),
        rows=rows,
    )


if __name__ == "__main__":
    from proofs_numeric._cli import run_one

    run_one(main)
