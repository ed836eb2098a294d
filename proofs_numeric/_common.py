"""What every verification shares: random problems, the result record, and its files."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import muso_jax as mj
from muso_jax.io import figures, reports

IN_DIM = 4
SIGMA = 0.5  # RFF bandwidth small against the spread of N(0, I) inputs: well-conditioned Gram


@dataclass(frozen=True)
class Result:
    name: str
    title: str
    statement: str  # the claim in plain words
    formula: str  # the formula, in Markdown math
    why: str  # three or four lines of reasoning
    tolerance: str  # what "pass" means, with its reason
    measured: dict  # the headline numbers
    passed: bool
    summary: str  # one line for the `muso verify` table
    rows: list = field(default_factory=list)  # the full table
    figure: str = ""  # file name of the PNG, relative to the output folder


def rff_problem(key, n: int, m: int, k: int = 0, dtype=jnp.float64, sigma: float = SIGMA):
    """Features (n, m) of n Gaussian inputs, +-1 targets (k = 0) or one-hot of k classes, theta0."""
    kx, kw, kt, ky = jax.random.split(key, 4)
    x = jax.random.normal(kx, (n, IN_DIM), dtype)
    fmap = mj.random_fourier(m // 2, sigma, dtype=dtype)
    phi = mj.featurize(fmap, fmap.init(kw, IN_DIM), x)
    if k == 0:
        return phi, jnp.where(x[:, 0] > 0, 1.0, -1.0).astype(dtype), jax.random.normal(kt, (m,), dtype)
    y = jax.nn.one_hot(jax.random.randint(ky, (n,), 0, k), k, dtype=dtype)
    return phi, y, jax.random.normal(kt, (m, k), dtype)


def rel(a, b) -> float:
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def figure(ncols: int = 1, width: float = 5.5, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def _markdown_table(rows: list) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    fmt = lambda v: (f"{v:.3g}" if isinstance(v, float) else str(v)).replace("|", "\\|")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def finish(out, fig, **fields) -> Result:
    """Write ``<name>.png``, ``<name>.json`` and ``<name>.md`` into ``out``; return the Result."""
    out = Path(out)
    name = fields["name"]
    figures.save_figure(fig, out / f"{name}.png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    result = Result(figure=f"{name}.png", **fields)
    reports.write_json(out / f"{name}.json", asdict(result))
    reports.write_text(out / f"{name}.md", lesson(result, heading="#"))
    return result


def lesson(r: Result, heading: str = "##") -> str:
    """The result as a short lesson: statement, formula, why, what was measured, the figure."""
    verdict = "PASS" if r.passed else "FAIL"
    measured = ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}" for k, v in r.measured.items())
    return (
        f"{heading} {r.title} ({verdict})\n\n"
        f"**Statement.** {r.statement}\n\n"
        f"**Formula.** {r.formula}\n\n"
        f"**Why it holds.** {r.why}\n\n"
        f"**Measured.** {measured}. Tolerance: {r.tolerance}.\n\n"
        f"{_markdown_table(r.rows)}\n"
        f"![{r.title}]({r.figure})\n"
    )


def floor(dtype=np.float64) -> float:
    """Machine epsilon of the dtype: the unit of the float floor in the figures."""
    return float(np.finfo(dtype).eps)
