r"""Privacy audit of the linear model: MUSO passes U-LiRA and the challenge's epsilon score,
random labels, Bad Teacher and fine-tuning on D_r do not (docs/audit.md).

    python -m proofs_numeric.privacy_audit [--size quick|default|full] [--seed S] [--out DIR]

Every model is the exact limit of SGD (the min-norm interpolant from its start, MUSO arXiv
2410.08557, implicit-bias lemma), so a population of B models is B closed forms from B starts,
computed in one vmapped program. The attacker sees a model's outputs on a forgotten point and
guesses whether the model unlearned it or was retrained without it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import muso_jax as mj
from muso_jax import audit
from proofs_numeric import _common as c

SIZES = dict(quick=dict(n=60, m=240, k=4, models=48, test=100),
             default=dict(n=150, m=600, k=5, models=128, test=500),
             full=dict(n=300, m=1200, k=5, models=512, test=1000))
FORGET_SHARE = 0.2
SIGMA = 0.8  # RFF bandwidth: neighbours inform a forgotten point, and the Gram stays well conditioned
GAP_TOL = 1e-8  # MUSO vs the own-start retrain; Gram condition about 2e5 (default) to 7e6 (full), times eps
METHODS = ("MUSO", "RL", "BT", "FT")  # and "Retrain", "Reference": two independent retrained populations
DETECTED = 0.55  # detected: the whole AUC interval lies above this (BT is the weakest: AUC 0.7-0.75 at quick)
Z99 = 2.576  # MUSO's forgetting quality may trail Retrain-vs-Retrain by at most this many standard errors
SHOWN = 3  # audited examples drawn in the figure


def pool(key, n: int, m: int, k: int):
    """Random-feature pool: n Gaussian inputs labelled by the nearest of k random class centres
    (a rule the model can learn, so test accuracy means something); features (n, m), labels (n,)."""
    kx, kc, kw = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, c.IN_DIM))
    centres = 1.5 * jax.random.normal(kc, (k, c.IN_DIM))
    labels = jnp.argmin(jnp.sum((x[:, None] - centres[None]) ** 2, -1), -1)
    fmap = mj.random_fourier(m // 2, SIGMA)
    return mj.featurize(fmap, fmap.init(kw, c.IN_DIM), x), labels


def shadow_models(key, phi, y, forget, phi_eval):
    r"""One model of each population, as its outputs on ``phi_eval`` (rows to score), (P, E, K).

    ``phi`` (N, M) and one-hot ``y`` (N, K) the training pool, ``forget`` a NumPy (N,) mask (static).
    With :math:`\mathrm{fit}(\theta_s; \Phi, Y) = \theta_s + \Phi^\top(\Phi\Phi^\top)^{-1}(Y - \Phi\theta_s)`
    the SGD limit from :math:`\theta_s`, and :math:`\theta_0, \theta_0', \theta_0'', w` independent
    N(0, I) draws of ``key``:

    * Retrain :math:`\mathrm{fit}(\theta_0'; \Phi_r, Y_r)`, Reference :math:`\mathrm{fit}(\theta_0''; \Phi_r, Y_r)`;
    * Original :math:`\theta_p = \mathrm{fit}(\theta_0; \Phi, Y)`, and from it, on all of D:
      MUSO (D_f relabelled :math:`\Phi_f \theta_r(\theta_0)`), RL (D_f relabelled with a uniformly
      drawn wrong class), BT (D_f relabelled :math:`\Phi_f w`, D_r with the original's outputs
      :math:`\Phi_r\theta_p = Y_r`), and FT (:math:`\mathrm{fit}(\theta_p; \Phi_r, Y_r)`: D_r alone).

    Order: MUSO, RL, BT, FT, Retrain, Reference. Also returns MUSO's relative distance to
    :math:`\theta_r(\theta_0)`, the retrain from the original's own start (exact unlearning: ~1e-13).
    """
    k0, k_ret, k_ref, k_rl, k_bt = jax.random.split(key, 5)
    K = y.shape[1]
    theta0, theta0_ret, theta0_ref = (jax.random.normal(k, (phi.shape[1], K), phi.dtype) for k in (k0, k_ret, k_ref))
    retain = ~forget
    phi_r, y_r, phi_f, y_f = phi[retain], y[retain], phi[forget], y[forget]
    theta_p = mj.min_norm_solution(phi, y, theta0)
    # Fits that share a Gram matrix share one solve: the min-norm fit acts column by column, so
    # fitting the side-by-side columns [Y | Y | ...] from [theta_a | theta_b | ...] is the separate fits.
    fit = lambda targets, starts, **kw: jnp.split(
        mj.min_norm_solution(phi, jnp.concatenate(targets, 1), jnp.concatenate(starts, 1), **kw), len(starts), 1)
    ft, retrain, reference, own = fit([y] * 4, [theta_p, theta0_ret, theta0_ref, theta0], retain=retain)
    wrong = (jnp.argmax(y_f, -1) + jax.random.randint(k_rl, (y_f.shape[0],), 1, K)) % K
    relabelled = [mj.relabel(k0, "muso", phi_r, y_r, phi_f, y_f, theta0),  # Phi_f theta_r(theta0)
                  jax.nn.one_hot(wrong, K, dtype=y.dtype),
                  mj.relabel(k_bt, "bad_teacher", phi_r, y_r, phi_f, y_f, theta0)]  # Phi_f w, w ~ N(0, I)
    muso, rl, bt = fit([y.at[forget].set(t) for t in relabelled], [theta_p] * 3)  # from theta_p on all of D
    gap = jnp.linalg.norm(muso - own) / jnp.linalg.norm(theta_p - own)
    thetas = jnp.stack([muso, rl, bt, ft, retrain, reference])
    return jnp.einsum("em,pmk->pek", phi_eval, thetas), gap


def _population_audit(scores, ref_scores, B):
    """U-LiRA of method models (positives) against retrained ones, half of each as shadows."""
    both = np.concatenate([scores, ref_scores])
    unlearned = np.zeros(both.shape, bool)
    unlearned[:B] = True
    shadow = np.tile(np.arange(B) < B // 2, 2)
    return audit.ulira(both, unlearned, ~unlearned, shadow)


def _quality(eps):
    return audit.forgetting_quality(eps), audit.epsilon_points(eps)


def main(key, out, size: str = "default") -> c.Result:
    s = SIZES[size]
    n, B, K = s["n"], s["models"], s["k"]
    n_f = int(round(FORGET_SHARE * n))
    k_pool, k_forget, k_models = jax.random.split(key, 3)
    phi_all, labels = pool(k_pool, n + s["test"], s["m"], K)
    phi = phi_all[:n]
    y = jax.nn.one_hot(labels[:n], K, dtype=phi.dtype)
    forget = np.zeros(n, bool)
    forget[np.asarray(jax.random.permutation(k_forget, n))[:n_f]] = True
    labels = np.asarray(labels)

    # the pool goes in as arguments, not constants: XLA would otherwise fold the Gram at compile time
    populations = jax.jit(jax.vmap(lambda k, p, t, e: shadow_models(k, p, t, forget, e), (0, None, None, None)))
    outputs, gaps = populations(jax.random.split(k_models, B), phi, y, phi_all)
    outputs, gaps = np.asarray(outputs), np.asarray(gaps)  # (B, 6, n + test, K)
    f_idx = np.flatnonzero(forget)
    scores = audit.logit_confidence(outputs[:, :, f_idx], np.broadcast_to(labels[f_idx], outputs.shape[:2] + (n_f,)))
    hits = outputs.argmax(-1) == labels  # (B, 6, n + test)
    ra = hits[:, :, np.flatnonzero(~forget)].mean((0, 2))
    ta = hits[:, :, n:].mean((0, 2))
    names = METHODS + ("Retrain", "Reference")
    by = {name: scores[:, i] for i, name in enumerate(names)}

    ref_eps = audit.per_example_epsilon(by["Reference"].T, by["Retrain"].T)
    ref_f, ref_h = _quality(ref_eps)
    rows, audits = [], {}
    for i, name in enumerate(METHODS + ("Reference",)):
        u = _population_audit(by[name], by["Retrain"], B)
        eps = audit.per_example_epsilon(by[name].T, by["Retrain"].T)
        f, h = _quality(eps)
        diff = h - ref_h
        audits[name] = (u, f, float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(n_f)))
        j = names.index(name)
        rows.append(dict(method=name, auc=u.auc, auc_low=u.auc_low, auc_high=u.auc_high, accuracy=u.accuracy,
                         tpr_at_1pct_fpr=u.tpr_at_1pct, tpr_at_01pct_fpr=u.tpr_at_01pct,
                         mean_epsilon=float(eps.mean()), forgetting_quality=f,
                         ra_ratio=float(ra[j] / ra[4]), ta_ratio=float(ta[j] / ta[4]),
                         challenge_score=audit.challenge_score(f, ra[j], ra[4], ta[j], ta[4])))
    muso, _, d_mean, d_se = audits["MUSO"]
    muso_ok = muso.auc_low <= 0.5 <= muso.auc_high and d_mean >= -Z99 * d_se
    detected = {name: audits[name][0].auc_low > DETECTED for name in ("RL", "BT", "FT")}
    worst_gap = float(gaps.max())
    passed = bool(muso_ok and all(detected.values()) and worst_gap <= GAP_TOL)

    fig, axes = c.figure(ncols=5, width=3.6, height=3.4)
    shown = np.argsort(ref_eps)[:: max(1, n_f // SHOWN)][:SHOWN]
    for ax, name in zip(axes, METHODS):
        for e, colour in zip(shown, ("C0", "C1", "C2")):
            both = np.r_[by[name][:, e], by["Retrain"][:, e]]
            bins = np.linspace(both.min() - 1e-3, both.max() + 1e-3, 30)
            ax.hist(by["Retrain"][:, e], bins, histtype="step", color=colour, linewidth=1.5)
            ax.hist(by[name][:, e], bins, color=colour, alpha=0.35)
        ax.set(title=f"{name} (filled) vs Retrain (line)", xlabel=r"score $\log p_y - \log(1 - p_y)$",
               ylabel="models" if name == "MUSO" else None)
    roc_ax = axes[-1]
    for name in METHODS + ("Reference",):
        u = audits[name][0]
        roc_ax.plot(u.roc.fpr, u.roc.tpr, label=f"{name} (AUC {u.auc:.2f})")
    roc_ax.plot([0, 1], [0, 1], color="gray", linestyle=":")
    roc_ax.set(title="U-LiRA ROC on target models", xlabel="FPR", ylabel="TPR")
    roc_ax.legend(fontsize=7)
    fig.suptitle(f"Per-example scores of {SHOWN} forgotten points ({B} models per population, N={n}, "
                 f"M={s['m']}, K={K}, |D_f|={n_f})", fontsize=9)

    measured = dict(muso_auc=muso.auc, muso_auc_low=muso.auc_low, muso_auc_high=muso.auc_high,
                    muso_quality=audits["MUSO"][1], reference_quality=ref_f,
                    **{f"{name.lower()}_auc_low": audits[name][0].auc_low for name in ("RL", "BT", "FT")},
                    worst_muso_gap=worst_gap, models=B)
    return c.finish(
        out, fig,
        name="privacy_audit",
        title="Privacy audit: MUSO is indistinguishable from retraining",
        statement="A per-example membership attack (U-LiRA) and the unlearning challenge's epsilon score cannot "
                  "tell MUSO-unlearned linear models from retrained ones, while they detect random labels, Bad "
                  "Teacher and fine-tuning on the retained data.",
        formula=r"$\Lambda_i(s) = \log N(s; \hat\mu_{u,i}, \hat\sigma_{u,i}) - \log N(s; \hat\mu_{r,i}, "
                r"\hat\sigma_{r,i}),\ s = \log p_y - \log(1-p_y);\quad \epsilon_i = \max_{\text{rules}} "
                r"\log\frac{1-\delta-\mathrm{FPR}}{\mathrm{FNR}},\ F = \frac1n\sum_i 2^{1-k(\epsilon_i)}$",
        why="MUSO lands exactly on the retrain from the original's start theta0, and theta0 is drawn like the "
            "retrained models' starts: the two populations are equal in distribution, so every attack is at chance "
            "up to sampling. RL and FT interpolate fixed targets on D_f (a wrong one-hot, or the true one-hot the "
            "original memorized): their scores do not vary over models. BT's outputs on D_f are a random init's, "
            "not the retrained model's posterior ones.",
        tolerance=f"MUSO's 95% bootstrap AUC interval contains 0.5 and its forgetting quality is at least "
                  f"Retrain-vs-Retrain's minus {Z99} paired standard errors; RL, BT and FT have the whole AUC "
                  f"interval above {DETECTED}; MUSO's parameters within {GAP_TOL:g} (relative) of the own-start retrain",
        measured=measured,
        passed=passed,
        summary=f"U-LiRA AUC MUSO {muso.auc:.2f} [{muso.auc_low:.2f}, {muso.auc_high:.2f}], "
                + ", ".join(f"{nm} {audits[nm][0].auc:.2f}" for nm in ("RL", "BT", "FT"))
                + f"; forgetting quality MUSO {audits['MUSO'][1]:.2f} vs Retrain-vs-Retrain {ref_f:.2f}",
        rows=rows,
    )


if __name__ == "__main__":
    from proofs_numeric._cli import run_one

    run_one(main)
