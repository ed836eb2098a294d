"""Experiments of the paper, written as pure functions over the library (no printing, no files)."""
