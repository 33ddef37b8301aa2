"""Wheels of the distributions this test environment has installed, for a pip without an index.

A test that installs siro-poller into a fresh venv has pip resolve its requirements, and those
of its build, against the package index: tens of seconds of fetching every release's file list
and sorting through it, and a network the test then depends on. That proves nothing the test
environment's own install (``pip install '.[test]'``, the same requirements from the same index)
has not proved already. Packed again from the files their RECORD lists, the distributions that
install left here let pip resolve and install the same requirements from a folder
(:func:`offline_pip`), into a venv as complete as one installed from the index.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
import zipfile
from collections.abc import Iterable
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# What an installer adds to a .dist-info folder; RECORD is written anew for the files packed.
INSTALLER_FILES = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"}


def checkout_requirements(repo: Path, extras: Iterable[str] = ("postgres",)) -> list[str]:
    """What installing the checkout at ``repo`` with ``extras`` needs: its build's
    requirements and its own."""
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    return [
        *pyproject["build-system"]["requires"],
        *project["dependencies"],
        *(text for extra in extras for text in project["optional-dependencies"][extra]),
    ]


def offline_pip(wheelhouse: Path) -> dict[str, str]:
    """The environment of a pip that finds every distribution in ``wheelhouse`` and nowhere
    else (its configured indexes and links included)."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}


def pack_installed(requirements: Iterable[str], into: Path) -> list[Path]:
    """A wheel in ``into`` of each installed distribution that ``requirements`` need, theirs
    included."""
    into.mkdir(parents=True, exist_ok=True)
    return [_pack(found, into) for found in _needed(requirements).values()]


def _needed(requirements: Iterable[str]) -> dict[str, Distribution]:
    found: dict[str, Distribution] = {}
    asked: set[tuple[str, str]] = set()
    pending = [
        requirement
        for requirement in map(Requirement, requirements)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""})
    ]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name not in found:
            found[name] = _installed(requirement)
        for extra in ("", *sorted(requirement.extras)):
            if (name, extra) in asked:
                continue
            asked.add((name, extra))
            for text in found[name].requires or []:
                needed = Requirement(text)
                if needed.marker is None or needed.marker.evaluate({"extra": extra}):
                    pending.append(needed)
    return found


def _installed(requirement: Requirement) -> Distribution:
    fix = "install the project again: pip install -e '.[test]'"
    try:
        found = distribution(requirement.name)
    except PackageNotFoundError:
        raise AssertionError(f"{requirement} is not installed here; {fix}") from None
    if not requirement.specifier.contains(found.version, prereleases=True):
        raise AssertionError(f"{requirement} is needed, {found.version} is installed; {fix}")
    return found


def _pack(found: Distribution, into: Path) -> Path:
    record = found.read_text("RECORD")
    wheel_info = found.read_text("WHEEL")
    assert record is not None and wheel_info is not None, (
        f"{found.metadata['Name']} was not installed from a wheel (no RECORD or WHEEL file)"
    )
    site = Path(str(found.locate_file("")))
    rows = [row for row in csv.reader(io.StringIO(record)) if row]
    info = next(
        PurePosixPath(path).parent
        for path, *_ in rows
        if path.endswith(".dist-info/METADATA") and path.count("/") == 1
    )
    tags = [line.split(":", 1)[1].strip() for line in wheel_info.splitlines() if line[:4] == "Tag:"]
    # The wheel's tags, compressed as its file name spells them (PEP 425).
    tag = "-".join(".".join(sorted({t.split("-")[part] for t in tags})) for part in range(3))
    name = re.sub(r"[-_.]+", "_", found.metadata["Name"]).lower()
    wheel = into / f"{name}-{found.version}-{tag}.whl"
    packed: list[list[str]] = []
    # Stored, not compressed: the wheel is unpacked once, on this machine.
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED, strict_timestamps=False) as archive:
        for path, *rest in rows:
            parts = PurePosixPath(path).parts
            # Outside the site folder: the scripts pip writes again from entry_points.txt.
            outside = parts[0] == ".." or PurePosixPath(path).is_absolute()
            compiled = "__pycache__" in parts or path.endswith(".pyc")
            added_by_installer = PurePosixPath(path).parent == info and parts[-1] in INSTALLER_FILES
            if outside or compiled or added_by_installer or not (site / path).is_file():
                continue
            archive.write(site / path, path)
            packed.append([path, *rest])
        listing = io.StringIO()
        csv.writer(listing, lineterminator="\n").writerows([*packed, [f"{info}/RECORD", "", ""]])
        archive.writestr(f"{info}/RECORD", listing.getvalue())
    return wheel
