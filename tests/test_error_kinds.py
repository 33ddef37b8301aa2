"""Every error kind the code can store in ``calls.error_kind`` has its meaning and fix."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from poller.domain import attribution, error_kinds, failures
from poller.domain.attribution import RepSkipReason
from poller.domain.error_kinds import ERROR_KINDS, error_kind
from poller.domain.failures import Disposition, StepFailure
from poller.domain.filters import SkipReason

PACKAGE = Path(error_kinds.__file__).resolve().parent.parent
CONSTRUCTORS = {"retry", "fail", "skip", "pause"}


def raised_kinds() -> list[tuple[str, str]]:
    """(where, kind) of every ``StepFailure.retry|fail|skip|pause(KIND, ...)`` in the package.

    A kind given as a name is resolved from the assignments in its module, or from the domain
    module it is imported from; both branches of a conditional count; an f-string keeps its
    literal parts, each field standing for a word (``siro_{step}_rejected``: ``siro_x_rejected``).
    """
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = _assigned_strings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in CONSTRUCTORS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "StepFailure"
                and node.args
            ):
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                found += [(where, kind) for kind in _kinds_of(node.args[0], names)]
    return found


def _assigned_strings(tree: ast.Module) -> dict[str, list[str]]:
    """Every ``NAME = <strings>`` in the module (module constants and local variables alike),
    with the names the domain modules define."""
    names: dict[str, list[str]] = {
        name: [value]
        for module in (failures, attribution)
        for name, value in vars(module).items()
        if isinstance(value, str)
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            kinds = _kinds_of(node.value, names)
            if kinds and not any(kind.startswith("?") for kind in kinds):
                names[node.targets[0].id] = kinds
    return names


def _kinds_of(argument: ast.expr, names: dict[str, list[str]]) -> list[str]:
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return [argument.value]
    if isinstance(argument, ast.IfExp):
        return _kinds_of(argument.body, names) + _kinds_of(argument.orelse, names)
    if isinstance(argument, ast.JoinedStr):
        return [
            "".join(
                part.value if isinstance(part, ast.Constant) else "x" for part in argument.values
            )
        ]
    if isinstance(argument, ast.Call) and isinstance(argument.func, ast.Attribute):
        # f"siro_{step}_unavailable".replace("-", "_")
        return _kinds_of(argument.func.value, names)
    if isinstance(argument, ast.Name):
        return names.get(argument.id, [f"?{argument.id}"])
    if isinstance(argument, ast.Attribute) and isinstance(argument.value, ast.Name):
        enum = {"RepSkipReason": RepSkipReason, "SkipReason": SkipReason}.get(argument.value.id)
        if enum is not None:
            return [enum[argument.attr].value]
    return [f"?{ast.unparse(argument)}"]


def test_the_scan_finds_the_kinds_raised_in_the_package() -> None:
    kinds = {kind for _, kind in raised_kinds()}
    # One of each way a kind is written: a literal, a module constant, an imported constant,
    # an enum member, a local variable, a conditional, an f-string.
    assert {"download_refused", "siro_create_unconfirmed", "not_audio", "ambiguous_rep"} <= kinds
    assert {"download_rate_limited", "download_network", "unsupported_format", "oversize"} <= kinds
    assert {"siro_x_rejected", "download_http_x"} <= kinds
    assert len(kinds) > 30


def test_every_kind_the_code_raises_has_an_entry() -> None:
    missing = [f"{where}: {kind}" for where, kind in raised_kinds() if error_kind(kind) is None]
    assert not missing, "kinds without an entry in poller/domain/error_kinds.py:\n" + "\n".join(
        missing
    )


def test_every_skip_reason_has_an_entry_as_a_skip() -> None:
    for reason in (*SkipReason, *RepSkipReason):
        entry = error_kind(reason.value)
        assert entry is not None, reason
        assert entry.disposition is Disposition.SKIP


def test_a_pattern_matches_its_kinds_and_nothing_else() -> None:
    rejected = error_kind("siro_signed_url_rejected")
    assert rejected is not None and rejected.name == "siro_<step>_rejected"
    http = error_kind("download_http_403")
    assert http is not None and http.name == "download_http_<status>"
    assert error_kind("siro_rejected") is None
    assert error_kind("no_such_kind") is None
    assert error_kind(None) is None


@pytest.mark.parametrize("entry", ERROR_KINDS, ids=lambda entry: entry.name)
def test_each_entry_says_what_it_means_and_what_to_do(entry: error_kinds.ErrorKind) -> None:
    assert entry.meaning.endswith(".") and entry.fix.endswith(".")
    assert sum(1 for other in ERROR_KINDS if other.name == entry.name) == 1


def test_a_retry_kind_keeps_its_disposition_in_the_catalog() -> None:
    # The catalog is what the docs say; the worker decides from the StepFailure itself.
    failure = StepFailure.retry("download_truncated", "cut short")
    entry = error_kind(failure.kind)
    assert entry is not None and entry.disposition is failure.disposition
