"""The district receiver (``swabkiosk district ...``): every record of every station, exactly once.

A package of its own: the kiosk (firmware_app) never imports it. See docs/mqtt.md."""
