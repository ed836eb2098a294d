"""Datasets that ship inside installed packages: nothing is ever downloaded."""

from muso_jax.data.bundled import BinaryData, load_binary

__all__ = ["BinaryData", "load_binary"]
