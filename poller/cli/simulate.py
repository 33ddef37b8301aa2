"""`siro-poller simulate`: the demo's simulators kept running, to rehearse one's own config."""

from __future__ import annotations

import click

from poller.cli.config_cmd import provider_kind_option
from poller.cli.root import main_group


@main_group.command("simulate")
@provider_kind_option("Which phone system to simulate.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="First port to listen on (the simulators take it and the ports after); 0: free ports.",
)
@click.option(
    "--config-out",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the ready config here instead of printing it.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="The ready config's state directory (default: a new temporary directory).",
)
@click.option(
    "--events-to",
    metavar="URL",
    help="Rehearse webhooks: a new call ends every --new-call-every seconds and the phone "
    "system sends its signed event here, e.g. http://127.0.0.1:8788/webhooks/<provider name> "
    "(RingCentral, Zoom, Aircall, Dialpad, Twilio). The ready config takes them.",
)
@click.option(
    "--new-call-every",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="With --events-to: seconds between two new calls.",
)
@click.option(
    "--events-secret",
    help="With --events-to: what the events are signed with (provider.webhook.secret); "
    "default: a new random one, among the secrets printed (Twilio: its Auth Token).",
)
def simulate(
    kind: str,
    port: int,
    config_out: str | None,
    state_dir: str | None,
    events_to: str | None,
    new_call_every: float,
    events_secret: str | None,
) -> None:
    """Run a simulated phone system and a simulated Siro on 127.0.0.1 until Ctrl-C.

    Seeds the calls the demo seeds, prints a ready config (secrets left out) and the `export`
    lines of its secrets, and the exports that point any other config of the same kind (one
    from `config init`, say) at the simulators. Stops cleanly on Ctrl-C or SIGTERM.

    With --events-to, a new call ends every --new-call-every seconds and the simulated phone
    system announces it with its vendor's signed webhook event, as the vendor would: the ready
    config has the receiver ([webhooks] listen) and the provider's webhook on, to rehearse the
    nudges before a vendor sends the first real event.
    """
    import signal
    import tempfile
    import threading
    from pathlib import Path

    import tomli_w

    from poller.demo.events import EVENT_KINDS, announce_new_calls, send_events
    from poller.demo.simulation import simulate as start

    if events_to is not None and kind not in EVENT_KINDS:
        raise click.BadParameter(
            f"{kind} sends no webhook events; --events-to takes {', '.join(EVENT_KINDS)}",
            param_hint="--events-to",
        )
    state = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="siro-poller-sim-"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with start(kind, state, first_port=port) as simulation:
            if events_to is not None:
                events = send_events(simulation, events_to, events_secret)
            config = tomli_w.dumps(simulation.config)
            click.echo(
                f"# siro-poller simulate: a {kind} phone system with "
                f"{len(simulation.seeded.calls)} calls and Siro, on 127.0.0.1."
            )
            if config_out:
                Path(config_out).write_text(config, encoding="utf-8")
                click.echo(f"# The ready config is {config_out}; its state directory {state}.")
            else:
                click.echo("# The ready config (save it as a file):")
                click.echo(config)
            click.echo("# Its secrets, which a config leaves to the environment:")
            for line in simulation.exports():
                click.echo(line)
            click.echo(
                f"# Or point your own config of kind {kind!r} (from `siro-poller config init "
                f"--provider {kind}`) at the simulators with all of these:"
            )
            for line in simulation.override_exports():
                click.echo(line)
            if any(name.endswith("__REFRESH_TOKEN") for name in simulation.secrets):
                # The rotated token is kept there; provider check refuses to spend it otherwise.
                click.echo(
                    "# Run `siro-poller db upgrade` with a config before its provider check."
                )
            if events_to is not None:
                click.echo(
                    f"# Every {new_call_every:g} s a new call ends and its signed event goes to "
                    f"{events_to} (the receiver takes /webhooks/<provider name>)."
                )
                announcer = threading.Thread(
                    target=announce_new_calls,
                    args=(events, new_call_every, stop, click.echo),
                    name="simulate-events",
                    daemon=True,
                )
                announcer.start()
            click.echo("# Simulators running; Ctrl-C stops them.")
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    click.echo("# Simulators stopped.", err=True)
