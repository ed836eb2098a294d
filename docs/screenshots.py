"""Look at the built site the way a reader does: check its links, render pages in headless Chromium.

    python docs/screenshots.py [--site docs/_build/html] [--out docs/_build/screenshots]
                               [--height 2400] [--chromium /usr/bin/chromium] [PAGE ...]

1. Every ``href``/``src`` of every HTML page that points inside the site must name a file that
   exists (anchors and query strings stripped), and no page may load a script, style sheet or
   image from another host: the site is offline.
2. Each PAGE (default: the index, one lesson, one API page) is rendered by headless Chromium
   (Debian's ``chromium``) to ``OUT/<page>.png`` after MathJax had time to typeset, and its DOM
   is checked: math typeset (``mjx-container`` elements, no MathJax error) where the source has
   math, figures present where the page has ``<img>``.

Exit status 1 on any broken link, remote resource or unrendered page. It needs a browser, so it
is a script rather than a test; ``tests/test_docs_site.py`` tests the link checker on a tiny
site of its own.
"""

from __future__ import annotations

import argparse
import html.parser
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

PAGES = ("index.html", "lessons/02_exact_unlearning.html", "reference/linear.html")


class _Refs(html.parser.HTMLParser):
    """The (tag, attribute, value) of every href and src in one page."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.refs.append((tag, name, value))


def link_problems(site: Path) -> list[str]:
    """Broken local links and remote resources of every page under ``site``, one line each."""
    problems = []
    for page in sorted(site.rglob("*.html")):
        parser = _Refs()
        parser.feed(page.read_text(encoding="utf-8"))
        for tag, attr, value in parser.refs:
            parts = urlsplit(value)
            if parts.scheme in ("http", "https") or value.startswith("//"):
                if tag != "a":  # a link to another site is fine; loading from one is not
                    problems.append(f"{page.relative_to(site)}: <{tag} {attr}> loads a remote resource {value}")
                continue
            if parts.scheme or not parts.path:  # mailto:, data:, javascript:, or a pure #anchor
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{page.relative_to(site)}: <{tag} {attr}> {value} does not exist")
    return problems


def render(chromium: str, page: Path, png: Path, width: int = 1280, height: int = 1800) -> str:
    """Screenshot ``page`` to ``png`` and return its DOM after scripts ran (MathJax included)."""
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--virtual-time-budget=10000", f"--window-size={width},{height}"]
    with tempfile.TemporaryDirectory() as profile:
        args = common + [f"--user-data-dir={profile}"]
        subprocess.run(args + [f"--screenshot={png}", page.as_uri()], check=True, capture_output=True, timeout=120)
        dom = subprocess.run(args + ["--dump-dom", page.as_uri()], check=True, capture_output=True, timeout=120)
    return dom.stdout.decode("utf-8", "replace")


def page_problems(name: str, source: str, dom: str) -> list[str]:
    """What a reader would see wrong on one rendered page."""
    problems = []
    has_math = 'class="math' in source or "\\(" in source
    if has_math and "<mjx-container" not in dom:
        problems.append(f"{name}: the page has math but MathJax typeset none of it")
    if "<mjx-merror" in dom:  # the element; the style sheet names the tag too
        problems.append(f"{name}: MathJax reports an error in a formula")
    if "<img" in source and "<img" not in dom:
        problems.append(f"{name}: figures missing after rendering")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages", nargs="*", default=list(PAGES), help="pages to render, relative to --site")
    ap.add_argument("--site", type=Path, default=Path("docs/_build/html"))
    ap.add_argument("--out", type=Path, default=Path("docs/_build/screenshots"))
    ap.add_argument("--height", type=int, default=2400, help="window height in pixels (the PNG's height)")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args(argv)
    if not (args.site / "index.html").exists():
        ap.error(f"--site: expected a built site with an index.html (run `make docs`); got {args.site}")
    if not Path(args.chromium).exists():
        ap.error(f"--chromium: expected Chromium's executable (apt-get install chromium); got {args.chromium}")
    missing = [p for p in args.pages if not (args.site / p).exists()]
    if missing:
        ap.error(f"PAGE: expected pages of the site; {missing} do not exist under {args.site}")

    problems = link_problems(args.site)
    print(f"links: {sum(1 for _ in args.site.rglob('*.html'))} pages checked, {len(problems)} problems")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.pages:
        page = args.site / name
        png = args.out / (name.replace("/", "_").removesuffix(".html") + ".png")
        dom = render(args.chromium, page.resolve(), png.resolve(), height=args.height)
        found = page_problems(name, page.read_text(encoding="utf-8"), dom)
        problems += found
        print(f"{name}: {png} ({dom.count('<mjx-container')} formulas typeset, {dom.count('<img')} images)"
              + ("" if not found else " PROBLEMS"))
    for line in problems:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
