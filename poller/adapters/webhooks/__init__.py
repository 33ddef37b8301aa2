"""Webhook events from the phone systems: the receiver, each vendor's verifier and its
subscription API. An event only ever nudges a poll (see :mod:`poller.ports.webhooks`)."""
