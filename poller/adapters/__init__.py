"""Adapters: the HTTP clients and the SQL store behind the ports in :mod:`poller.ports`."""
