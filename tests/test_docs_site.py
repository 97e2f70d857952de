"""The documentation site as a reader gets it: built with mkdocs, every page reads without a maths renderer
or anything fetched from another host, lists render as lists, and the README's links into the docs land
on pages and anchors that exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "NO_MKDOCS_2_WARNING": "1"}

# Raw LaTeX left for a renderer that is not there: \( \) \[ \] delimiters, $$, $...$, TeX commands.
LATEX = [
    re.compile(r"\\[()\[\]]"),
    re.compile(r"\$\$"),
    re.compile(r"(?<![\w$])\$[^\s$](?:[^$\n]*[^\s$])?\$(?![\w$])"),
    re.compile(r"\\[a-zA-Z]+\{"),
    re.compile(r"\\(?:frac|tfrac|dfrac|sqrt|sum|prod|int|varepsilon|epsilon|mathrm|mathbf|text|cdot|dots|ldots"
               r"|left|right|times|pm|bar|hat|alpha|beta|gamma|delta|lambda|sigma|mu|nabla|partial)\b"),
]
# A source line that starts like a list item but was rendered as running text: the item ran into the one
# before it (a numbered step inside the previous step's paragraph) or a list that never started.
MERGED_ITEM = re.compile(r"\n[ \t]*(?:\d+[.)]|[-*+])[ \t]+\S[^\n]*")
VERBATIM = {"code", "pre", "script", "style"}
LOADS = {"script": "src", "link": "href", "img": "src", "iframe": "src"}


class Page(HTMLParser):
    """The text nodes of a built page outside code, pre, script and style, each marked whether it lies in
    the page's article (not the theme's navigation), and every URL the page loads by itself (scripts,
    stylesheets, fonts, images, frames)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.verbatim = 0
        self.article = 0
        self.texts: list[tuple[bool, str]] = []
        self.loads: list[str] = []
        self.classes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.classes.update((attributes.get("class") or "").split())
        if tag in VERBATIM:
            self.verbatim += 1
        if tag == "article":
            self.article += 1
        url = attributes.get(LOADS.get(tag, ""))
        if url and (tag != "link" or {"stylesheet", "preconnect", "preload", "modulepreload", "icon"}
                    & set((attributes.get("rel") or "").split())):
            self.loads.append(url)

    def handle_endtag(self, tag: str) -> None:
        if tag in VERBATIM:
            self.verbatim = max(0, self.verbatim - 1)
        if tag == "article":
            self.article = max(0, self.article - 1)

    def handle_data(self, data: str) -> None:
        if not self.verbatim:
            self.texts.append((self.article > 0, data))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def pages(site: Path) -> dict[str, Page]:
    parsed = {}
    for path in sorted(site.rglob("*.html")):
        page = Page()
        page.feed(path.read_text(encoding="utf-8"))
        page.close()
        parsed[str(path.relative_to(site))] = page
    # not vacuous: every page of the nav was built
    assert {"index.html", "flow/index.html", "outputs/index.html", "running/index.html"} <= set(parsed)
    return parsed


def test_no_page_shows_raw_latex(pages: dict[str, Page]) -> None:
    found = []
    for name, page in pages.items():
        if "arithmatex" in page.classes:
            found.append(f"{name}: an arithmatex block (maths left for MathJax)")
        for _, text in page.texts:
            markers = sorted({match.group() for pattern in LATEX for match in pattern.finditer(text)})
            if markers:
                found.append(f"{name}: {' '.join(markers)} in {text.strip()[:100]!r}")
    assert not found, "raw LaTeX in the built site:\n" + "\n".join(found)


def test_no_page_loads_anything_from_another_host(pages: dict[str, Page]) -> None:
    """Formulas and fonts included: the site reads the same offline."""
    found = [f"{name}: {url}" for name, page in pages.items() for url in page.loads
             if re.match(r"(?:[a-z][a-z0-9+.-]*:)?//", url, re.IGNORECASE)
             or re.search(r"mathjax|katex|cdn\.|jsdelivr|unpkg|googleapis|gstatic", url, re.IGNORECASE)]
    assert not found, "pages loading from another host:\n" + "\n".join(found)


def test_list_items_render_as_list_items(pages: dict[str, Page]) -> None:
    found = [f"{name}: {match.group().strip()!r}" for name, page in pages.items()
             for in_article, text in page.texts if in_article for match in MERGED_ITEM.finditer(text)]
    assert not found, "lines that start like a list item but render inside a paragraph:\n" + "\n".join(found)


def test_the_readmes_links_into_the_docs_land(site: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(docs/([^)#\s]+)(?:#([^)\s]+))?\)", readme)
    assert links
    missing = []
    for target, anchor in links:
        if not target.endswith(".md"):
            if not (REPO / "docs" / target).is_file():
                missing.append(target)
            continue
        page = site / ("index.html" if target == "index.md" else target.removesuffix(".md") + "/index.html")
        if not page.is_file():
            missing.append(target)
        elif anchor and f'id="{anchor}"' not in page.read_text(encoding="utf-8"):
            missing.append(f"{target}#{anchor}")
    assert not missing, "README links to docs that do not exist: " + ", ".join(missing)
