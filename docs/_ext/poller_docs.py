"""Reference pages generated from the code, so each fact is written once, where it lives.

Three directives, each writing MyST Markdown that the page then parses as its own text:

``config-reference``
    every configuration key, from the settings models (``poller.config_schema``);
``error-kinds``
    every value of ``calls.error_kind`` with its meaning and fix (``poller.domain.error_kinds``);
``metrics``
    every Prometheus metric with its type, labels and help text, as the daemon declares them
    (``poller.adapters.prometheus_metrics``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from docutils import nodes
from docutils.statemachine import StringList
from prometheus_client import CollectorRegistry
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from poller.domain.error_kinds import ERROR_KINDS
from poller.domain.failures import Disposition
from poller.domain.records import PollCursor, StatusSummary


class MarkdownDirective(SphinxDirective):
    """Inserts the Markdown :meth:`markdown` returns, parsed as part of the page.

    Its headings become sections of the page, under the heading the directive stands in."""

    has_content = False

    def markdown(self) -> str:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        self.state.nested_parse(
            StringList(self.markdown().splitlines(), source=self.name),
            self.content_offset,
            container,
            match_titles=True,
        )
        return container.children


class ConfigReference(MarkdownDirective):
    def markdown(self) -> str:
        # Imported here: the module belongs to the configuration, which a docs build may lack
        # only while it is being written; a missing module then fails the build by name.
        from poller.config_schema import reference_markdown

        return reference_markdown()


class ErrorKinds(MarkdownDirective):
    """One section per disposition, each kind as a definition: meaning, then its fix."""

    HEADINGS: ClassVar[dict[Disposition, str]] = {
        Disposition.FAIL: "Failed: a person fixes the cause",
        Disposition.RETRY: "Retried by themselves",
        Disposition.PAUSE: "Credentials: the work pauses",
        Disposition.SKIP: "Skipped: nothing to upload",
    }

    def markdown(self) -> str:
        lines: list[str] = []
        for disposition, heading in self.HEADINGS.items():
            lines += [f"## {heading}", ""]
            for kind in ERROR_KINDS:
                if kind.disposition is disposition:
                    lines += [
                        f"`{kind.name}`",
                        f": {kind.meaning}",
                        "",
                        f"  **Fix:** {kind.fix}",
                        "",
                    ]
        return "\n".join(lines)


def _exposed_metrics() -> list[tuple[str, str, str, list[str]]]:
    """(name as scraped, type, help, label names) of every metric the daemon serves.

    The collectors are the daemon's own, over a made-up state with one of everything, so
    every labelled series shows up with its labels."""
    from poller.adapters.prometheus_metrics import (
        PrometheusTelemetry,
        StateTableCollector,
        TableSizeCollector,
    )
    from poller.domain.retention import TableSizes

    now = datetime(2026, 1, 1, tzinfo=UTC)
    summary = StatusSummary(
        counts={"pending": 1},
        due_now=1,
        oldest_due_at=now - timedelta(minutes=1),
        cursors=[PollCursor("p", cursor_value=now, last_success_at=now)],
        unmapped={"p": 1},
        uploaded_by_attribution={"siro_email": 1},
    )

    class OneOfEverything:
        def status(self, at: datetime) -> StatusSummary:
            return summary

        def table_sizes(self) -> TableSizes:
            return TableSizes(rows={"calls": 1}, database_bytes=1, unmapped_expired={"p": 1})

    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(registry, version="0")
    telemetry.step_finished("upload", "ok", seconds=1.0, kind="")
    telemetry.poll_finished(ok=True, listed=1)
    telemetry.bytes_downloaded(1)
    telemetry.webhook_request("p", "accepted")
    state: Any = OneOfEverything()
    registry.register(StateTableCollector(state, lambda: now, scopes=["siro"]))
    registry.register(TableSizeCollector(state))

    found = []
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels: dict[str, None] = {}
        for sample in family.samples:
            if not sample.name.endswith("_created"):  # the client's own start-time series
                labels.update(dict.fromkeys(k for k in sample.labels if k != "le"))
        found.append((name, family.type, family.documentation, list(labels)))
    return found


class Metrics(MarkdownDirective):
    def markdown(self) -> str:
        lines = ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
        for name, kind, documentation, labels in _exposed_metrics():
            shown = ", ".join(f"`{label}`" for label in labels) or "-"
            lines.append(f"| `{name}` | {kind} | {shown} | {documentation} |")
        return "\n".join(lines)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("config-reference", ConfigReference)
    app.add_directive("error-kinds", ErrorKinds)
    app.add_directive("metrics", Metrics)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
