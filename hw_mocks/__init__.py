"""Simulated hardware at the real boundary: ptys, a printer byte sink, a camera frame source."""
