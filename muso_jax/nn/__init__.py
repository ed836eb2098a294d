"""The Flax (NNX) path: networks with an explicit penultimate layer and head, training with a
saved initialization, and MUSO's alternating relabel / unlearn algorithm for networks
(Yang et al., arXiv 2410.08557, section on nonlinear networks). Only this sub-package imports Flax.
"""
