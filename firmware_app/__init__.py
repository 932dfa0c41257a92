"""swabkiosk: the sampling-table daemon (station core, store, uplink, CLI, screen)."""

__version__ = "0.1.0"
