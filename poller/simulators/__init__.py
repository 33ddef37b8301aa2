"""Local stand-ins for the outside world: HTTP servers on 127.0.0.1 that play providers and Siro."""
