"""README.md and docs/*.md: every relative link resolves, and README opens with CI's commands.

The anchors are computed here with GitHub's rule for heading ids (lower case, punctuation
dropped, spaces to hyphens, ``-1``, ``-2`` for repeats), written independently of any docs
tooling; the two set-up commands are read from ``.ci/run``, the script CI actually runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FIRST_SCREEN_LINES = 60

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`]*`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans blanked."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(INLINE_CODE.sub("", line))
    return lines


def github_anchor(heading: str) -> str:
    """GitHub's id for a heading: lower case, only word characters, hyphens and spaces kept."""
    text = heading.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading id of a page (fenced code skipped), repeats numbered as GitHub does."""
    seen: dict[str, int] = {}
    ids = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = github_anchor(match.group(2))
            count = seen.get(base, 0)
            ids.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return ids


def relative_links(page: Path) -> list[str]:
    """Link and image targets of a page that point into the repository (no scheme)."""
    targets = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                targets.append(target)
    return targets


def test_the_pages_exist():
    names = {page.name for page in PAGES}
    assert {"README.md", "glossary.md"} <= names
    assert len(PAGES) > 5


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target}: no file {destination.relative_to(ROOT)}")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with id #{anchor}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_anchor_rule_on_known_headings():
    # GitHub's ids for headings of the kind these pages use, worked out by hand.
    assert github_anchor("`sampler serve`: the page") == "sampler-serve-the-page"
    assert github_anchor("Inside `model.generate`") == "inside-modelgenerate"
    assert github_anchor("The llama.cpp backend") == "the-llamacpp-backend"
    assert github_anchor("Reproduction: the trends of Holtzman et al. (2020)") == (
        "reproduction-the-trends-of-holtzman-et-al-2020"
    )


def ci_readme_commands() -> list[str]:
    """The commands .ci/run runs as README's: the line after each '# README command N' comment."""
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    return [lines[i + 1].strip() for i, line in enumerate(lines[:-1])
            if re.match(r"#\s*README command \d", line)]


def test_readme_first_screen_has_the_ci_commands_verbatim():
    commands = ci_readme_commands()
    assert len(commands) == 2, commands
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    first_screen = readme[:FIRST_SCREEN_LINES]
    for command in commands:
        assert command in (line.strip() for line in first_screen), (
            f"README's first {FIRST_SCREEN_LINES} lines lack the command .ci/run runs: {command}")


def test_readme_is_short():
    # Issue 19: the README is a first screen and a map; the reference lives in docs/.
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 200
