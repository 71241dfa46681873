"""The install files agree, and the repository layout the README promises exists."""

from __future__ import annotations

import re
import tomllib

import yaml

from jepa_core.paths import repo_root

CONDA_TO_PIP = {"pytorch": "torch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_and_pyproject_ask_for_the_same_packages():
    root = repo_root()
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]} | {
        _name(r) for r in project["optional-dependencies"]["dev"]
    }
    env = yaml.safe_load((root / "environment.yml").read_text())
    conda = {
        CONDA_TO_PIP.get(_name(d), _name(d)) for d in env["dependencies"] if isinstance(d, str)
    }
    conda -= {"python", "pip"}
    assert conda == wanted, (
        f"only in environment.yml: {conda - wanted}; only in pyproject: {wanted - conda}"
    )
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e .[dev]" in pip_section


def test_torch_requirements_carry_no_index_urls_and_the_agreed_floors():
    text = (repo_root() / "pyproject.toml").read_text()
    assert '"torch>=2.3"' in text and '"torchvision>=0.18"' in text
    assert "index-url" not in text and "--extra-index" not in text


def test_layout():
    root = repo_root()
    for path in (
        "notebooks",
        "jepa_core",
        "data/README.md",
        "results/README.md",
        "tests",
        "environment.yml",
        "pyproject.toml",
        "README.md",
        "Makefile",
        ".ci/run",
        "docs/references.md",
        "docs/results.md",
    ):
        assert (root / path).exists(), path
    assert "make test" in (root / ".ci/run").read_text()


# Documents a learner does not have: the product cites papers and public code instead, through
# docs/references.md.
UNSHIPPED_DOCUMENTS = re.compile(
    r"(?i:seed 00\d|seed report|seed project)|REFERENCES\.md|REFERENCES:"
)


def test_the_product_points_only_at_documents_it_ships():
    root = repo_root()
    files = [
        root / "README.md",
        *(root / "jepa_core").rglob("*.py"),
        *(root / "notebooks").glob("*.ipynb"),
    ]
    found = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if UNSHIPPED_DOCUMENTS.search(line)
    ]
    assert not found, "pointers to documents the project does not ship:\n" + "\n".join(found)
    for path in [root / "README.md", *(root / "notebooks").glob("*.ipynb")]:
        links = re.findall(r"\]\(((?:\.\./)?docs/[^)#]+)", path.read_text(encoding="utf-8"))
        assert all((path.parent / link).exists() for link in links), (path.name, links)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_markdown_pages_link_to_files_and_headings_that_exist():
    root = repo_root()
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(root)}: {target}")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{page.relative_to(root)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
