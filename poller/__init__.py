"""siro-poller: poll a phone system's call log and upload every recording to Siro exactly once."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("siro-poller")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
