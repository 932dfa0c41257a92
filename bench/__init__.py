"""Reusable measurements (each module has ``measure(...) -> dict``); not run by the test suite."""
