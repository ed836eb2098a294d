"""The conventions table of docs/api.md, checked over every public function of the package."""

import importlib
import inspect
import pkgutil
import re
import typing
from pathlib import Path

import pytest

import muso_jax

ROOT = Path(muso_jax.__file__).parent


def _modules():
    names = [m.name for m in pkgutil.walk_packages(muso_jax.__path__, "muso_jax.")]
    return [importlib.import_module(n) for n in ["muso_jax"] + names if n != "muso_jax.cli"]


def _public_functions():
    """(qualified name, function) for every public function defined in a muso_jax module."""
    out = []
    for mod in _modules():
        for name, obj in vars(mod).items():
            if name.startswith("_") or not inspect.isfunction(obj):
                continue
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            out.append((f"{mod.__name__}.{name}", obj))
    return out


FUNCTIONS = _public_functions()


def _params(fn):
    return list(inspect.signature(fn).parameters)


def test_the_walk_finds_the_package():
    names = {q for q, _ in FUNCTIONS}
    assert {"muso_jax.closed_form.min_norm_solution", "muso_jax.unlearn.unlearn_linear",
            "muso_jax.nn.muso.unlearn", "muso_jax.deletion.delete"} <= names
    assert len(FUNCTIONS) > 60


@pytest.mark.parametrize("qualname, fn", FUNCTIONS, ids=[q for q, _ in FUNCTIONS])
def test_argument_names_and_order(qualname, fn):
    params = _params(fn)
    banned = {"where": "retain", "net_0": "net0", "theta_0": "theta0"}
    for old, new in banned.items():
        assert old not in params, f"{qualname}: argument `{old}` is spelled `{new}` (docs/api.md)"
    for init, trained in (("theta0", "theta_p"), ("net0", "net_p")):
        if init in params and trained in params:
            assert params.index(init) < params.index(trained), f"{qualname}: `{init}` comes before `{trained}`"
    if "key" in params:
        p = inspect.signature(fn).parameters["key"]
        assert params[0] == "key", f"{qualname}: the PRNG key is the first argument"
        assert p.default is inspect.Parameter.empty, f"{qualname}: the PRNG key is never defaulted"


def test_one_name_one_signature():
    """A name means one function across the package: same-named functions share their
    argument list (docs/api.md, 'names')."""
    by_name = {}
    for qualname, fn in FUNCTIONS:
        by_name.setdefault(qualname.rsplit(".", 1)[1], []).append((qualname, tuple(_params(fn))))
    clashes = {name: entries for name, entries in by_name.items() if len({sig for _, sig in entries}) > 1}
    assert clashes == {}


def _unlearning_functions():
    from muso_jax.nn import baselines

    fns = [(q, f) for q, f in FUNCTIONS if q.rsplit(".", 1)[1].startswith("unlearn") or q.endswith("deletion.delete")]
    fns += [(f"muso_jax.nn.baselines.METHODS[{name!r}]", f) for name, f in baselines.METHODS.items()]
    return fns


@pytest.mark.parametrize("qualname, fn", _unlearning_functions(), ids=[q for q, _ in _unlearning_functions()])
def test_every_unlearning_function_returns_model_and_info(qualname, fn):
    hints = typing.get_type_hints(inspect.unwrap(fn))
    ret = hints.get("return")
    assert typing.get_origin(ret) is tuple, f"{qualname}: annotate the return as tuple[model, Info]"
    args = typing.get_args(ret)
    assert len(args) == 2, f"{qualname}: returns (model, info)"
    info = args[1]
    assert isinstance(info, type) and issubclass(info, tuple) and hasattr(info, "_fields"), \
        f"{qualname}: info is a NamedTuple, got {info}"
    if "forget" not in _params(fn):
        pytest.fail(f"{qualname}: takes the forget set as `forget`")


def test_network_unlearning_methods_share_one_signature():
    from muso_jax.nn import baselines, muso, muso_ntk

    expected = ["key", "net0", "net_p", "x", "y", "forget", "cfg", "on_progress"]
    for fn in [muso.unlearn, muso_ntk.unlearn, *baselines.METHODS.values()]:
        assert _params(inspect.unwrap(fn)) == expected, fn


def _lines_matching(pattern, paths) -> list[str]:
    """``file:line: text`` of every code line (comments stripped) of ``paths`` that matches."""
    return [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
            for path in paths for i, line in enumerate(path.read_text().splitlines(), 1)
            if pattern.search(line.split("#")[0])]


LINALG = re.compile(r"\b(jnp|np|numpy|jax\.numpy)\.linalg\.(cholesky|solve|svd|eigh|eigvalsh|inv|pinv|lstsq)\b"
                    r"|\bcho_solve\b|\bsolve_triangular\b|\bscipy\.linalg\b")


def test_every_factorization_goes_through_linalg():
    """One linear-algebra module (docs/deadlock.md): no other module of the package calls
    LAPACK-backed routines directly."""
    paths = [p for p in ROOT.rglob("*.py") if p.name != "_linalg.py"]
    assert _lines_matching(LINALG, paths) == []


def test_the_math_never_prints_or_writes_files():
    """Only cli.py and io/ print, write files or save figures (docs/api.md, 'I/O'); data/
    reads the datasets, and nothing else opens a file."""
    pattern = re.compile(r"\bprint\(|\bopen\(|\.savefig\(|\.write_text\(|\.write_bytes\(|np\.save|json\.dump\(")
    paths = [p for p in ROOT.rglob("*.py")
             if p.relative_to(ROOT).parts[0] not in ("io", "data") and p.name != "cli.py"]
    assert _lines_matching(pattern, paths) == []


def test_docs_the_code_cites_live_in_the_repository():
    """Docstrings and docs point at files inside the repository, never at ../shared."""
    offenders = []
    for path in list(ROOT.rglob("*.py")) + list((ROOT.parent / "docs").rglob("*.md")) + [ROOT.parent / "README.md"]:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if "../shared" in line or "shared/docs" in line:
                offenders.append(f"{path.name}:{i}")
    assert offenders == []
