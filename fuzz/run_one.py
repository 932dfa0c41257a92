"""One atheris target: ``python -m fuzz.run_one NAME [libFuzzer args...] CORPUS_DIR...``."""

from __future__ import annotations

import sys

import atheris


def main() -> None:
    import logging

    logging.disable(logging.CRITICAL)  # the parsers log every refusal: millions of lines (this process only)
    name = sys.argv[1]
    with atheris.instrument_imports(include=["firmware_app", "drivers"]):
        from fuzz import targets
    target = targets.TARGETS[name]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
