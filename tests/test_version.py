"""The version a build gives the package: the release's git tag, and a fallback without git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hatchling.metadata.core import ProjectMetadata
from hatchling.plugin.manager import PluginManager

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A copy of what the build reads for the version, outside any git repository."""
    tree = tmp_path / "siro-poller"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    (tree / "poller").mkdir()
    (tree / "poller" / "__init__.py").write_text('"""siro-poller."""\n', encoding="utf-8")
    return tree


def built_version(tree: Path) -> str:
    """The version hatchling writes into the package's metadata when building ``tree``."""
    return ProjectMetadata(str(tree), PluginManager()).version


def git(tree: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=tree,
        capture_output=True,
        check=True,
    )


def test_a_tree_without_git_or_pkg_info_builds_as_0_0_0(source: Path) -> None:
    assert built_version(source) == "0.0.0"


def test_a_tagged_commit_is_the_tag_s_version_and_later_ones_are_dev_versions(
    source: Path,
) -> None:
    git(source, "init", "-q", "-b", "main")
    git(source, "add", ".")
    git(source, "commit", "-q", "-m", "first")
    assert built_version(source).startswith("0.0.1.dev1+g")  # no release yet

    git(source, "tag", "v0.1.0")
    assert built_version(source) == "0.1.0"

    (source / "poller" / "later.py").write_text("", encoding="utf-8")
    git(source, "add", ".")
    git(source, "commit", "-q", "-m", "later")
    assert built_version(source).startswith("0.1.1.dev1+g")
