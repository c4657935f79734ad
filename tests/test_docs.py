"""Every relative link in the README and docs/ points at a file inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]
# [text](target) and [text](<target>), not images' alt text; reference links too.
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\[[^\]]+\]:\s*(\S+)",
                  re.MULTILINE)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.IGNORECASE)


def relative_links(text: str) -> list[str]:
    """The link targets of a Markdown text that are paths (no URL, no bare anchor)."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # code blocks hold no links
    targets = [a or b for a, b in LINK.findall(text)]
    return [t for t in targets if not EXTERNAL.match(t)]


def test_the_link_finder_sees_relative_links_and_skips_urls():
    text = ("[a](docs/A.md) [b](https://x.org/y) [c](#anchor) [d](../out.md#part)\n"
            "```\n[e](in-code.md)\n```\n[f]: notes/F.md\n")
    assert relative_links(text) == ["docs/A.md", "../out.md#part", "notes/F.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(doc):
    for target in relative_links(doc.read_text(encoding="utf-8")):
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO), f"{doc.name}: {target} points outside the repository"
        assert path.exists(), f"{doc.name}: {target} does not exist"


def test_the_readme_links_the_api_contract():
    assert "docs/API_CONTRACT.md" in relative_links((REPO / "README.md").read_text())
