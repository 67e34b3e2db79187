"""Links into docs/ from the code, the README and the docs themselves point at files and headings that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"docs/([a-z_]+\.md)(?:#([a-z0-9-]+))?")


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in doc.read_text().splitlines() if line.startswith("#")}


def test_every_docs_link_resolves() -> None:
    sources = [*ROOT.joinpath("cmtutor").rglob("*.py"), ROOT / "README.md", *ROOT.joinpath("docs").glob("*.md")]
    broken = []
    for src in sources:
        for name, anchor in LINK.findall(src.read_text()):
            doc = ROOT / "docs" / name
            if not doc.exists() or (anchor and anchor not in anchors(doc)):
                broken.append(f"{src.relative_to(ROOT)}: docs/{name}#{anchor}")
    assert not broken, "links to missing docs or headings:\n" + "\n".join(broken)


def test_the_slug_rule() -> None:
    assert slug(" 2D noise levels") == "2d-noise-levels"
    assert slug("TCM and Direct CM on 2D") == "tcm-and-direct-cm-on-2d"
    assert slug("Image defaults (digits, CIFAR-10)") == "image-defaults-digits-cifar-10"
