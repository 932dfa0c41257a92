"""The kiosk screen: a local page pushed live from the daemon (see docs/screen.md)."""

from firmware_app.ui.server import PROVISION_ERRORS, UiServer

__all__ = ["PROVISION_ERRORS", "UiServer"]
