"""The documentation site's pieces that need neither Sphinx nor a browser: the link checker of
docs/screenshots.py on a tiny site written here, and the reference pages and lessons kept in
step with the package (a new module or proof without its page fails here, not in review)."""

import importlib.util
import pkgutil
import re
from pathlib import Path

import muso_jax
import proofs_numeric

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _screenshots():
    spec = importlib.util.spec_from_file_location("screenshots", DOCS / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_link_checker_finds_broken_links_and_remote_resources(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "img.png").write_bytes(b"")
    (tmp_path / "sub" / "index.html").write_text("<p>sub</p>")
    (tmp_path / "index.html").write_text(
        '<a href="sub/">ok dir</a> <a href="sub/index.html#top">ok anchor</a> <a href="#here">ok</a>'
        '<img src="img.png"> <a href="https://example.org">ok: a link out</a>'
        '<a href="missing.html">broken</a> <img src="figures/gone.png">'
        '<script src="https://cdn.example.org/mathjax.js"></script> <link href="//cdn.example.org/x.css">'
        '<a href="mailto:a@b.c">mail</a>')
    problems = _screenshots().link_problems(tmp_path)
    assert len(problems) == 4, problems
    assert any("missing.html does not exist" in p for p in problems)
    assert any("figures/gone.png does not exist" in p for p in problems)
    assert sum("remote resource" in p for p in problems) == 2


def test_page_checks_flag_untypeset_math_and_missing_figures():
    shots = _screenshots()
    source = '<span class="math notranslate">\\(x\\)</span><img src="a.png">'
    assert shots.page_problems("p", source, "<html><mjx-container></mjx-container><img src='a.png'></html>") == []
    assert len(shots.page_problems("p", source, "<html>\\(x\\)</html>")) == 2
    assert len(shots.page_problems("p", source, "<mjx-container><mjx-merror><img src=a.png>")) == 1


def _documented_modules():
    names = set()
    for page in (DOCS / "reference").glob("*.md"):
        names |= set(re.findall(r"\.\. automodule:: (\S+)", page.read_text()))
    return names


def test_every_public_module_has_a_reference_page():
    public = {m.name for m in pkgutil.walk_packages(muso_jax.__path__, "muso_jax.")
              if not any(part.startswith("_") for part in m.name.split("."))}
    public -= {m.name for m in pkgutil.walk_packages(muso_jax.__path__, "muso_jax.") if m.ispkg}
    documented = _documented_modules()
    assert public - documented == set(), "modules without an API page"
    assert documented - public == set(), "API pages for modules that do not exist"


def test_every_numerical_proof_has_its_lesson():
    lessons = " ".join(p.read_text() for p in (DOCS / "lessons").glob("[0-9]*.md"))
    assert [m for m in proofs_numeric.MODULES if f"proofs_numeric/{m}.py" not in lessons] == []
