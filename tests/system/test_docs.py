"""The documents point where they say: every relative link in README.md and docs/ leads to
a file of the repository (and its #anchor to a heading there), every `NAME.md` they name
exists, and so does every docs/ file the code names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(document: Path) -> set[str]:
    """GitHub's anchors for the headings: lower case, punctuation dropped, spaces as -."""
    found = set()
    for line in document.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_relative_links_lead_to_files_and_headings(document):
    for target in LINK.findall(document.read_text()):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not ours to check here
            continue
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        assert linked.is_file(), f"{document.name} links to {target}: no such file"
        if anchor:
            assert anchor in anchors(linked), f"{document.name} links to {target}: no heading"
    for name in re.findall(r"`([\w./-]+\.md)`", document.read_text()):  # named, not linked
        assert (ROOT / name).is_file(), f"{document.name} names {name}: no such file"


def test_the_docs_the_code_names_exist():
    named = set()
    for source in [*ROOT.glob("httap/*.py"), *ROOT.glob("gpio/*.py"), *ROOT.glob("tests/**/*.py")]:
        named.update(re.findall(r"\bdocs/[\w.-]+\.md\b", source.read_text()))
    assert "docs/protocol.md" in named
    for name in named:
        assert (ROOT / name).is_file(), name


def test_the_readme_quotes_the_benchmark_results_word_for_word():
    """The README's Performance figures are rows of bench/RESULTS.md, and every goal's
    verdict there is in the README: a full `make bench` writes both (bench/report.py);
    a figure edited by hand in either fails here."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- bench: [^\n]*-->\n(.*?)<!-- /bench -->", readme, re.S)
    assert block, "README.md has no <!-- bench: ... --> ... <!-- /bench --> block"
    quoted = [line for line in block.group(1).splitlines() if line.startswith("|")]
    results = (ROOT / "bench" / "RESULTS.md").read_text().splitlines()
    verdicts = [line for line in results if re.search(r"\*\*(PASS|MISS|n/a)\*\*", line)]
    assert verdicts, "bench/RESULTS.md judges no goal"
    assert [line for line in quoted if line not in results] == []
    assert [line for line in verdicts if line not in quoted] == []
