"""munet-serve: the muNet method as a running service (server, evolver, clients)."""

__version__ = "0.1.0"
