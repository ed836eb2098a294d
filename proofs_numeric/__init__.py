"""Numerical verification of every theoretical result of MUSO (arXiv 2410.08557).

One module per result. Each has ``main(key, out, size="default") -> Result``: it draws fresh
random problems from ``key``, measures, compares with the closed form under a stated tolerance,
and writes a Markdown + JSON table and a PNG figure into ``out``. ``muso verify`` runs them all
and writes a report that reads as a short lesson. Modules use only the public muso_jax API.
"""

MODULES = (
    "implicit_bias",
    "exact_unlearning",
    "projector_form",
    "necessity",
    "phase_transition",
    "finite_step_rate",
    "ridge_precision",
    "order_independence",
    "linearized_network",
    "privacy_audit",
)
