"""Every `docs/method.md#anchor` cited in the repository names a heading of docs/method.md."""

import os
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
METHOD = REPO / "docs" / "method.md"
CITATION = re.compile(r"docs/method\.md#([A-Za-z0-9_-]+)")
IN_DOC_LINK = re.compile(r"\]\(#([A-Za-z0-9_-]+)\)")
SUFFIXES = {".py", ".yaml", ".yml", ".md", ".sh", ".toml", ".txt"}
SKIP_DIRS = {"__pycache__", "runs", "build", "dist", "node_modules"}


def _source_files():
    """Text files of the repository but this one, skipping hidden folders (.git, .venv) and outputs."""
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS
                         and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = pathlib.Path(folder) / name
            if path.suffix in SUFFIXES and path != pathlib.Path(__file__).resolve():
                yield path


def _slug(heading):
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors():
    return {
        _slug(line.lstrip("#"))
        for line in METHOD.read_text(encoding="utf-8").splitlines()
        if re.match(r"#{1,6} ", line)
    }


def test_slug_matches_github():
    assert _slug("Recipe values") == "recipe-values"
    assert _slug("Differences from the reference recipes") == "differences-from-the-reference-recipes"
    assert _slug("FLOPs") == "flops"


def test_method_doc_cites_resolve():
    known = anchors()
    assert {"fbank", "recipe-values", "flops", "phases", "metrics"} <= known
    bad = []
    for path in _source_files():
        relative = path.relative_to(REPO)
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            cited = CITATION.findall(line)
            if path == METHOD:
                cited += IN_DOC_LINK.findall(line)
            bad += [f"{relative}:{number}: #{anchor}" for anchor in cited if anchor not in known]
    assert not bad, "Citations of docs/method.md sections that do not exist:\n" + "\n".join(bad)


def test_no_reference_to_design_notes_outside_the_repository():
    # The design notes live outside the repository; code cites docs/method.md instead.
    hits = []
    for path in _source_files():
        relative = path.relative_to(REPO)
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if "DESIGN.md" in line:
                hits.append(f"{relative}:{number}")
    assert not hits, "DESIGN.md is not in the repository; cite docs/method.md#section:\n" + "\n".join(hits)


def test_every_cited_source_path_exists():
    """A `kc2f/...py` or `tests/...py` path cited in README.md or docs/ names a file of the repository
    (modules move: a moved one must take its citations along)."""
    cited = re.compile(r"(?<![\w/.])((?:kc2f|tests|tools)/[\w/]+\.(?:py|sh))")
    missing = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            missing += [f"{doc.relative_to(REPO)}:{number}: {path}" for path in cited.findall(line)
                        if not (REPO / path).is_file()]
    assert not missing, "cited paths that do not exist:\n" + "\n".join(missing)


README_SECTION = re.compile(r'README, \\?"([^"\\]+)\\?"')


def test_every_readme_section_named_in_kc2f_exists():
    # Messages and tables point users to README sections by name (`README, "What the time columns count"`).
    readme = (REPO / "README.md").read_text()
    named = {name for path in (REPO / "kc2f").rglob("*.py") for name in README_SECTION.findall(path.read_text())}
    assert named, "no README section is named in kc2f"
    missing = sorted(name for name in named if f"## {name}" not in readme and f"**{name}." not in readme)
    assert not missing, f"README has no section or paragraph titled {missing}"
