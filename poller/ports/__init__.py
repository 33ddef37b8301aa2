"""Ports: the ``Protocol``s the core talks to. Adapters implement them; fakes sit beside them."""
