"""The documentation's relative links lead somewhere: every linked file (and image) exists and
every ``#anchor`` is a heading of its target, as GitHub renders it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "reports").glob("*/README.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # links and images alike
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text (code and emphasis marks and link targets
    dropped) in lower case, punctuation but ``-`` and ``_`` dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        heading = re.match(r"#{1,6} (.*)", line)
        if heading:
            base = slug(heading.group(1))
            n = found.get(base, 0)
            found[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(doc):
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif not path.exists():
            broken.append(f"{target}: no file {path.relative_to(ROOT)}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading '{anchor}' in {path.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_slug_is_githubs():
    assert slug("The default DAG's wall time") == "the-default-dags-wall-time"
    assert slug("How often each procedure certifies wrongly") == "how-often-each-procedure-certifies-wrongly"
    assert slug("`ours` against DA") == "ours-against-da"
    assert slug("What it shows (`known_behaviours.csv`)") == "what-it-shows-known_behaviourscsv"
    assert slug("[Adding a method](x.md), *briefly*") == "adding-a-method-briefly"


def test_the_readme_screenshot_shows_a_report_of_this_code():
    """docs/report.png (the README's picture) was shot from a report that this code renders: the
    stamp of the tables' and the page's code beside it is the current one."""
    import json

    from bench.report.screenshot import rendering_stamp

    stamp = json.loads((ROOT / "docs" / "report.json").read_text())
    assert stamp["rendering"] == rendering_stamp(), (
        "docs/report.png shows a report that the current tables/page code no longer renders: "
        "`make run`, then `python -m bench.report.screenshot reports/default/report.html`")


def test_the_rendering_stamp_follows_code_not_docstrings(tmp_path):
    from bench.report.screenshot import rendering_stamp

    for name, text in (("report/html.py", '"""Doc."""\nX = 1\n'), ("tables/a.py", "Y = 2\n")):
        (tmp_path / "bench" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "bench" / name).write_text(text)
    before = rendering_stamp(tmp_path)
    (tmp_path / "bench/report/html.py").write_text('"""Another doc."""\nX = 1  # a comment\n')
    assert rendering_stamp(tmp_path) == before
    (tmp_path / "bench/tables/a.py").write_text("Y = 3\n")
    assert rendering_stamp(tmp_path) != before


@pytest.mark.skipif(__import__("shutil").which("chromium") is None, reason="needs Debian's chromium")
def test_the_screenshot_command_shoots_the_page(tmp_path):
    from PIL import Image

    from bench.report.screenshot import shoot

    page = tmp_path / "page.html"
    page.write_text('<html><body style="background:#c00"><h1>report</h1></body></html>')
    shot = shoot(page, tmp_path / "shot.png", 400, 300)
    with Image.open(shot) as image:
        assert image.size == (400, 300) and image.getpixel((200, 250))[:3] == (204, 0, 0)
