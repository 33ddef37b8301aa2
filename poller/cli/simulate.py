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
def simulate(kind: str, port: int, config_out: str | None, state_dir: str | None) -> None:
    """Run a simulated phone system and a simulated Siro on 127.0.0.1 until Ctrl-C.

    Seeds the calls the demo seeds, prints a ready config (secrets left out) and the `export`
    lines of its secrets, and the exports that point any other config of the same kind (one
    from `config init`, say) at the simulators. Stops cleanly on Ctrl-C or SIGTERM.
    """
    import signal
    import tempfile
    import threading
    from pathlib import Path

    import tomli_w

    from poller.demo.simulation import simulate as start

    state = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="siro-poller-sim-"))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with start(kind, state, first_port=port) as simulation:
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
            click.echo("# Simulators running; Ctrl-C stops them.")
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    click.echo("# Simulators stopped.", err=True)
