"""The core: use cases that drive the ports (the poll cycle, later the worker). No HTTP, no SQL."""
