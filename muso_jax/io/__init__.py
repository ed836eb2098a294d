"""Everything that touches the file system; the math of ``muso_jax`` never prints, reads or
writes files. Used by ``muso_jax.cli`` (and the benchmarks and ``proofs_numeric``).

  files    atomic writes with normal permissions, cleanup of killed writers' temporary files,
           the check that an output path is writable before any long work
  reports  JSON, CSV and text results
  figures  matplotlib PNGs
  cache    trained networks on disk, keyed by their data, initialization and configuration
"""

from muso_jax.io import cache, figures, files, reports

__all__ = ["cache", "figures", "files", "reports"]
