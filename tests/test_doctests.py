"""The ``Examples`` of every public docstring run here, as doctests, under the suite's settings
(float64, strict dtype and rank promotion: tests/conftest.py), so an example that stops
matching its function fails the suite rather than rotting on the documentation site."""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import muso_jax

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _public_modules():
    """Every module of the package whose name has no leading underscore, the CLI included."""
    names = ["muso_jax"] + [m.name for m in pkgutil.walk_packages(muso_jax.__path__, "muso_jax.")]
    return [n for n in names if not any(part.startswith("_") for part in n.split("."))]


MODULES = _public_modules()


def _public_functions(module):
    for name, obj in sorted(vars(module).items()):
        if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == module.__name__:
            yield name, obj


@pytest.mark.parametrize("name", MODULES)
def test_every_public_function_shows_an_example(name):
    """docs/api.md: each public function's docstring has an ``Examples`` section with at least
    one ``>>>`` line (private modules and names with a leading underscore are exempt)."""
    module = importlib.import_module(name)
    missing = []
    for fname, fn in _public_functions(module):
        doc = inspect.getdoc(fn) or ""
        if "Examples\n--------" not in doc or ">>>" not in doc.split("Examples\n--------", 1)[1]:
            missing.append(fname)
    assert missing == [], f"{name}: no `Examples` section with a `>>>` line in {missing}"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = []
    for test in tests:
        result = runner.run(test, out=report.append, clear_globs=True)
        assert result.attempted > 0
    failed = runner.summarize(verbose=False).failed
    assert failed == 0, "".join(report)
