"""The config's documentation, generated from the settings models: each fact written once.

Every key's description is its field's docstring in the model that defines it (the core
sections in :mod:`poller.config`, ``[siro]`` beside the Siro adapter, each provider kind's
table beside its adapter). From them come the example files (``config.example.toml`` for
the generic kind, ``examples/<kind>.toml`` for each other kind), the minimal config
``siro-poller config init`` writes, and the reference page of the documentation
(:func:`reference_markdown`).

Regenerate the committed examples after changing a model::

    python -m poller.config_schema --write
"""

from __future__ import annotations

import argparse
import ast
import enum
import inspect
import itertools
import re
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import AwareDatetime, BaseModel, SecretStr
from pydantic.fields import FieldInfo

from poller.adapters.providers.registry import KINDS, adapter_class
from poller.adapters.providers.settings import DEFAULT_PROVIDER_KIND, ProviderSettingsBase
from poller.config import Settings, env_name
from poller.config_types import MINIMAL, Section

WIDTH = 99
GENERIC_EXAMPLE = Path("config.example.toml")
EXAMPLES_DIR = Path("examples")
REGENERATE = "python -m poller.config_schema --write"
# Tables of the core config, as the example files show them, in this order; [provider] goes
# where its field is.
_ROOT_TABLES = (
    "database",
    "siro",
    "provider",
    "poll",
    "worker",
    "metrics",
    "webhooks",
    "retention",
    "logging",
    "source_deletion",
)


def example_path(kind: str) -> Path:
    """Where the committed example of ``kind`` lives, relative to the repository."""
    return GENERIC_EXAMPLE if kind == DEFAULT_PROVIDER_KIND else EXAMPLES_DIR / f"{kind}.toml"


def provider_model(kind: str) -> type[ProviderSettingsBase]:
    """The settings model of one provider kind; raises ``KeyError`` for an unknown kind."""
    return adapter_class(kind).settings_model


# --- What a key is -----------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One config key as the documentation shows it."""

    path: tuple[str, ...]
    info: FieldInfo
    default: Any  # as JSON data; None when unset
    # What a commented-out line shows when the field gives no example (a kind's own base URL).
    fallback_example: Any = None

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def secret(self) -> bool:
        return SecretStr in set(_inner_types(self.info.annotation))

    @property
    def minimal(self) -> bool:
        """Part of the minimal config: set in every example and by ``config init``."""
        extra = self.info.json_schema_extra
        return isinstance(extra, Mapping) and all(extra.get(k) == v for k, v in MINIMAL.items())

    @property
    def example(self) -> Any:
        examples = self.info.examples
        return examples[0] if examples else self.fallback_example

    @property
    def description(self) -> str:
        text = " ".join((self.info.description or "").split())
        if text and not text.endswith((".", "?", ")")):
            text += "."
        return text[:1].upper() + text[1:]

    def supplied_by(self) -> str:
        """Where a secret comes from: the variable and the systemd credential file."""
        return f"set {env_name(self.path)} or the credential file {self.dotted}"


def _inner_types(annotation: Any) -> Iterator[Any]:
    yield annotation
    for argument in get_args(annotation):
        yield from _inner_types(argument)


def _attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """The docstring under each field ``model`` itself annotates, as pydantic reads them."""
    try:
        source = textwrap.dedent(inspect.getsource(model))
    except (OSError, TypeError):
        return {}
    body = ast.parse(source).body
    if not body or not isinstance(body[0], ast.ClassDef):
        return {}
    statements = body[0].body
    docs = {}
    for field, after in itertools.pairwise(statements):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[field.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _document(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    """Each field's docstring made its description, in ``model`` and the tables under it.

    The models leave this to here (see poller.config_types.Section): what pydantic's
    ``use_attribute_docstrings`` would do as each model is made, done once when the
    documentation is generated. As there, a description given in ``Field`` stays, and a field
    takes the docstring of the class that annotates it last (a subclass that redeclares a
    field without one leaves it without).
    """
    if model in seen:
        return
    seen.add(model)
    owners: dict[type[BaseModel], dict[str, str]] = {}
    for name, info in model.model_fields.items():
        if info.description is None:
            owner = next((k for k in model.__mro__ if name in inspect.get_annotations(k)), None)
            if owner is not None:
                if owner not in owners:
                    owners[owner] = _attribute_docstrings(owner)
                info.description = owners[owner].get(name)
        for inner in _inner_types(info.annotation):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                _document(inner, seen)


def _document_every_model() -> None:
    """Every config model: the tables under Settings and every kind's, and the bases whose
    fields the documentation reads on their own (the keys every kind shares)."""
    seen: set[type[BaseModel]] = set()
    models: list[type[BaseModel]] = [Settings, Section, *map(provider_model, KINDS)]
    while models:
        model = models.pop()
        _document(model, seen)
        models.extend(model.__subclasses__())


_document_every_model()


def _table_model(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    if get_origin(annotation) is list:
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    if model is Settings:
        return {}  # its defaults read the environment; each table has its own model
    return model().model_dump(mode="json")


def keys_of(model: type[BaseModel], prefix: tuple[str, ...]) -> list[Key]:
    """The plain keys of one table (not its sub-tables), ``kind`` and ``name`` first."""
    defaults = _defaults(model)
    vendor_url = getattr(model, "default_base_url", None)
    keys = [
        Key((*prefix, name), info, defaults.get(name), vendor_url if name == "base_url" else None)
        for name, info in model.model_fields.items()
        if _table_model(info) is None and name not in ("provider", "providers")
    ]
    first = {"kind": 0, "name": 1}
    return sorted(keys, key=lambda key: first.get(key.name, 2))


def tables_of(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    return [
        (name, table)
        for name, info in model.model_fields.items()
        if (table := _table_model(info)) is not None
    ]


def describe_type(annotation: Any) -> str:
    """A key's type in words: ``integer >= 1``, ``one of "all", "poller"``, ``list of text``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = get_args(annotation)
        return _with_bounds(describe_type(inner), metadata)
    if origin in (Union, getattr(__import__("types"), "UnionType", Union)):
        parts = [describe_type(a) for a in get_args(annotation) if a is not type(None)]
        return " or ".join(parts)
    if origin is Literal:
        return "one of " + ", ".join(f'"{value}"' for value in get_args(annotation))
    if origin is list:
        return f"list of {describe_type(get_args(annotation)[0])}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"table of {describe_type(key)} to {describe_type(value)}"
    if annotation is SecretStr:
        return "text (secret)"
    if annotation is AwareDatetime:
        return "date-time with a zone (ISO 8601)"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(f'"{member.value}"' for member in annotation)
    names = {str: "text", int: "integer", float: "number", bool: "boolean", Path: "path"}
    if isinstance(annotation, type) and annotation in names:
        return names[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return str(annotation)


def _with_bounds(text: str, metadata: Sequence[Any]) -> str:
    bounds: list[str] = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            bounds += _field_bounds(item.metadata)
        else:
            bounds += _field_bounds([item])
    return f"{text} {', '.join(bounds)}" if bounds else text


def _field_bounds(metadata: Sequence[Any]) -> list[str]:
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    found = []
    for item in metadata:
        for attribute, sign in words.items():
            value = getattr(item, attribute, None)
            if isinstance(item, annotated_types.BaseMetadata) and value is not None:
                found.append(f"{sign} {value}")
    return found


def key_type(key: Key) -> str:
    return _with_bounds(describe_type(key.info.annotation), key.info.metadata)


# --- TOML ------------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    """``value`` written as TOML, tables inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _toml_string(name)


def _comment(text: str, width: int = WIDTH) -> list[str]:
    plain = " ".join(text.replace("``", "").split())
    lines = textwrap.wrap(plain, width - 2, break_long_words=False, break_on_hyphens=False)
    return [f"# {line}" for line in lines]


def _placeholder(key: Key) -> Any:
    if key.example is not None:
        return key.example
    if describe_type(key.info.annotation).startswith(("text", "path")):
        return "..."
    raise ValueError(f"{key.dotted}: give the field an example (Field(examples=[...]))")


def _key_lines(key: Key) -> list[str]:
    lines = _comment(key.description)
    if key.secret:
        lines += _comment(f"Secret, never written here: {key.supplied_by()}.")
        return [*lines, f'# {key.name} = "..."']
    if key.minimal:
        return [*lines, f"{key.name} = {toml_value(key.example)}"]
    if key.default is None:
        return [*lines, f"# {key.name} = {toml_value(_placeholder(key))}"]
    return [*lines, f"{key.name} = {toml_value(key.default)}"]


def _table_intro(model: type[BaseModel]) -> list[str]:
    doc = " ".join((model.__doc__ or "").split())
    # A docstring that opens by naming its table says it twice in a file that has the header.
    doc = re.sub(r"^``\[[a-z_.]+\]``(?: with ``kind = \"\w+\"``)?: ", "", doc)
    return _comment(doc[:1].upper() + doc[1:]) if doc else []


def _table(
    header: str, model: type[BaseModel], path: tuple[str, ...], *, minimal_only: bool
) -> list[str]:
    keys = keys_of(model, path)
    if minimal_only:
        keys = [key for key in keys if key.minimal or key.name == "kind"]
    body = [line for key in keys for line in _key_lines(key)]
    lines: list[str] = []
    if body or not minimal_only:
        lines = ["", *([] if minimal_only else _table_intro(model)), f"[{header}]", *body]
    for name, table in tables_of(model):
        lines += _table(f"{header}.{name}", table, (*path, name), minimal_only=minimal_only)
    return lines


def render_example_toml(kind: str | None = None) -> str:
    """The full commented example config of one provider kind (``None``: the generic kind)."""
    kind = kind or DEFAULT_PROVIDER_KIND
    lines = [
        f"# siro-poller configuration, provider kind {kind!r}.",
        "# Generated from the settings models: edit the models, then run",
        f"# `{REGENERATE}`.",
        "#",
        *_comment(Settings.__doc__ or ""),
        "#",
        *_comment(
            "Each other provider kind has its own example in examples/<kind>.toml; "
            "`siro-poller config init --provider KIND` writes the minimal config of one. "
            f"The kinds: {', '.join(KINDS)}."
        ),
        "",
    ]
    root = keys_of(Settings, ())
    for key in root:
        lines += [*_key_lines(key), ""]
    providers = Settings.model_fields["providers"]
    lines += _comment(providers.description or "")
    lines += [f"# providers = {toml_value(providers.examples[0] if providers.examples else [])}"]
    for name in _ROOT_TABLES:
        lines += _table(name, _root_table(name, kind), (name,), minimal_only=False)
    return "\n".join(lines).rstrip() + "\n"


# --- The minimal config of `config init` ---------------------------------------------------


@dataclass(frozen=True)
class MinimalConfig:
    """What ``config init`` writes, and what it leaves to the environment."""

    text: str
    secrets: list[Key]  # each to come from the environment or a credential file
    placeholders: list[Key]  # written with a placeholder the user must replace


def minimal_keys(kind: str) -> list[Key]:
    """The keys a working config of ``kind`` needs set, secrets included."""
    found: list[Key] = []

    def walk(model: type[BaseModel], path: tuple[str, ...]) -> None:
        found.extend(key for key in keys_of(model, path) if key.minimal)
        for name, table in tables_of(model):
            walk(table, (*path, name))

    for name in _ROOT_TABLES:
        walk(_root_table(name, kind), (name,))
    return found


def render_minimal_config(kind: str, *, database: str = "sqlite") -> MinimalConfig:
    """A config of ``kind`` with only what has no default; secrets left to the environment."""
    lines = [
        f"# siro-poller configuration for a {kind} phone system, written by `siro-poller config "
        "init`.",
        f"# Every key, with its description and default: {example_path(kind).as_posix()} in the",
        "# siro-poller sources, or the configuration reference of its documentation.",
        "# Secrets are not written here: give them as environment variables or systemd",
        "# credential files (see the comments of each table).",
    ]
    if database == "postgres":
        lines += [
            "",
            "[database]",
            "# SQLAlchemy URL of the PostgreSQL database; needs the postgres extra:",
            "# pip install 'siro-poller[postgres]'.",
            'url = "postgresql+psycopg://siro_poller@localhost:5432/siro_poller"',
            *_comment(
                "Secret, never written here: the password, merged into url; "
                + keys_of(_database_model(), ("database",))[1].supplied_by()
                + "."
            ),
        ]
    for name in _ROOT_TABLES:
        lines += _table(name, _root_table(name, kind), (name,), minimal_only=True)
    keys = minimal_keys(kind)
    secrets = [key for key in keys if key.secret]
    if database == "postgres":
        secrets.append(keys_of(_database_model(), ("database",))[1])
    return MinimalConfig(
        text="\n".join(lines).rstrip() + "\n",
        secrets=secrets,
        placeholders=[key for key in keys if not key.secret],
    )


def _database_model() -> type[BaseModel]:
    return _root_table("database", DEFAULT_PROVIDER_KIND)


def _root_table(name: str, kind: str) -> type[BaseModel]:
    """The model of one top-level table; ``[provider]``'s is that of ``kind``."""
    if name == "provider":
        return provider_model(kind)
    table = _table_model(Settings.model_fields[name])
    if table is None:
        raise KeyError(name)
    return table


# --- The reference page ----------------------------------------------------------------


def reference_markdown() -> str:
    """Every config key as MyST Markdown (headings of level 2 and deeper): its path, type,
    default, whether it is a secret, what it does, and which provider kinds take it."""
    out = [
        "## How settings are read",
        "",
        _md(Settings.__doc__ or ""),
        "",
    ]
    for key in keys_of(Settings, ()):
        out += _md_key(key, heading="###")
    out += ["### `providers`", "", _md(Settings.model_fields["providers"].description or ""), ""]
    for name in _ROOT_TABLES:
        if name == "provider":
            out += _md_provider()
            continue
        table = _table_model(Settings.model_fields[name])
        assert table is not None
        out += _md_table(name, table, (name,), level=2)
    return "\n".join(out).rstrip() + "\n"


def _md(text: str) -> str:
    return " ".join(text.split()).replace("``", "`")


def _md_table(header: str, model: type[BaseModel], path: tuple[str, ...], level: int) -> list[str]:
    out = [f"{'#' * level} `[{header}]`", ""]
    if model.__doc__:
        out += [_md(model.__doc__), ""]
    for key in keys_of(model, path):
        out += _md_key(key, heading="#" * (level + 1))
    for name, table in tables_of(model):
        out += _md_table(f"{header}.{name}", table, (*path, name), level + 1)
    return out


def _md_key(key: Key, heading: str, kinds: Sequence[str] = (), title: str = "") -> list[str]:
    facts = [f"- Type: {key_type(key)}"]
    if key.secret:
        facts.append(f"- Secret: yes; never in the file: {key.supplied_by()}")
    else:
        default = "unset" if key.default is None else f"`{toml_value(key.default)}`"
        facts.append(f"- Default: {default}")
        facts.append(f"- Environment: `{env_name(key.path)}`")
    if key.minimal:
        facts.append("- Needed: the poller does not run without it")
    if kinds:
        facts.append(f"- Kinds: {', '.join(f'`{kind}`' for kind in kinds)}")
    return [f"{heading} {title or f'`{key.dotted}`'}", "", _md(key.description), "", *facts, ""]


def _md_provider() -> list[str]:
    """``[provider]``: the keys every kind takes, then each kind's own."""
    out = [
        "## `[provider]`",
        "",
        _md(Settings.model_fields["provider"].description or ""),
        "A `[[providers]]` table takes the same keys.",
        "",
    ]
    models = {kind: provider_model(kind) for kind in KINDS}
    shared = [
        key
        for key in keys_of(ProviderSettingsBase, ("provider",))
        if all(
            models[kind].model_fields[key.name] is ProviderSettingsBase.model_fields[key.name]
            or models[kind].model_fields[key.name].annotation
            == ProviderSettingsBase.model_fields[key.name].annotation
            for kind in KINDS
        )
    ]
    shared_names = {key.name for key in shared} | {"kind"}
    out += [
        "### Keys of every kind",
        "",
        "#### `provider.kind`",
        "",
        "Which adapter talks to the phone system; it decides which other keys the table takes.",
        "",
        f"- Type: one of {', '.join(f'`{kind}`' for kind in KINDS)}",
        f"- Default: `{toml_value(DEFAULT_PROVIDER_KIND)}`",
        "",
    ]
    for key in shared:
        out += _md_key(key, heading="####", kinds=list(KINDS))
    for kind, model in models.items():
        out += [f'### `kind = "{kind}"`', "", _md(model.__doc__ or ""), ""]
        own = [key for key in keys_of(model, ("provider",)) if key.name not in shared_names]
        for key in own:
            owners = [k for k in KINDS if key.name in models[k].model_fields]
            # Several kinds have a key of the same name: the heading says whose this is.
            out += _md_key(key, "####", owners, title=f"`{key.dotted}` ({kind})")
        for name, table in tables_of(model):
            out += _md_table(f"provider.{name}", table, ("provider", name), level=4)
    return out


# --- Command line ----------------------------------------------------------------------


def expected_files() -> dict[Path, str]:
    """Each committed example file and the text it must hold."""
    return {example_path(kind): render_example_toml(kind) for kind in KINDS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m poller.config_schema",
        description="Print or rewrite the example configs generated from the settings models.",
    )
    parser.add_argument("--kind", choices=list(KINDS), help="print this kind's example")
    parser.add_argument(
        "--write", action="store_true", help="rewrite every example file under --root"
    )
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="the repository (default: here)"
    )
    parser.add_argument(
        "--reference", action="store_true", help="print the Markdown config reference"
    )
    args = parser.parse_args(argv)
    if args.write:
        for path, text in expected_files().items():
            target = args.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
        return 0
    sys.stdout.write(reference_markdown() if args.reference else render_example_toml(args.kind))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
