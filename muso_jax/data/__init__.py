"""Datasets that ship inside installed packages or sit in local files, and the forget sets of
the unlearning protocol: nothing is ever downloaded."""

from muso_jax.data.bundled import BinaryData, load_binary
from muso_jax.data.idx import read_idx
from muso_jax.data.images import IMAGE_DATASETS, SCALES, ImageData, load_images, training_subset
from muso_jax.data.scenarios import SCENARIOS, forget_class, forget_mask, forget_random, forget_subclass

__all__ = [
    "BinaryData",
    "IMAGE_DATASETS",
    "ImageData",
    "SCALES",
    "SCENARIOS",
    "forget_class",
    "forget_mask",
    "forget_random",
    "forget_subclass",
    "load_binary",
    "load_images",
    "read_idx",
    "training_subset",
]
