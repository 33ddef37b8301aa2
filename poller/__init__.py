"""siro-poller: poll a phone system's call log and upload every recording to Siro exactly once."""

from functools import cache


def __getattr__(name: str) -> str:
    # ``poller.__version__`` is read from the installed metadata when first asked for, not
    # on import: importlib.metadata costs more than the rest of `siro-poller --help`.
    if name == "__version__":
        return _installed_version()
    raise AttributeError(f"module 'poller' has no attribute {name!r}")


@cache
def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("siro-poller")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+source"
