"""The station file: one TOML file per table, checked against ONE declared schema
(``config.schema.json``, JSON Schema via the ``jsonschema`` package) plus the few checks a
schema cannot express (keys that decode, a printer target we can open, a regex that
compiles), all reported together, each naming the dotted key and its line.

A kiosk with any problem in its file refuses to start: a wrong key id or table name
would send people's records where nobody looks for them.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from firmware_app.catalogue import Lang, both, text as catalogue_text

SCHEMA_FILE = "config.schema.json"
# Public keys of config/demo-*.pem, whose private halves are in the repository: fine for
# `simulate` and training, never for a real table (anyone could forge codes).
DEMO_KEYS = frozenset({"A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=", "ebVWLo/mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ="})
PRINTER_TARGET = re.compile(r"(serial:/\S+|usb:0x[0-9a-fA-F]{4}:0x[0-9a-fA-F]{4}|tcp://[^\s:/]+(:[0-9]{1,5})?|file:/\S+)")
# Bounds checked before the text is parsed at all: a station file is ~2 KB; tomllib and
# the regex compiler recurse per nesting level (RecursionError, not a problem list).
MAX_TEXT = 256 * 1024  # characters
MAX_NESTING = 32  # [ and { open at once (a naive count: brackets inside strings count too)
MAX_PATTERN = 256  # characters of sampling.tube_pattern


@dataclass(frozen=True)
class Problem:
    key: str  # dotted, e.g. "sampling.mode" or "authority.operator_keys[0]"; "" for the file
    line: int | None  # 1-based line in the file where the key is (or its section), if found
    message: str  # English (config.* in the catalogue)
    message_zh: str = ""

    @classmethod
    def of(cls, key: str, line: int | None, message: str, /, **values: Any) -> "Problem":
        """The problem whose words are catalogue key ``message`` with ``values``."""
        zh_text, en_text = both(message, **values)
        return cls(key, line, en_text, zh_text)

    def text(self, lang: Lang = "en") -> str:
        """``line 3: mqtt.url: ...`` in ``lang`` (zh-CN: the line as config.line says it)."""
        where = catalogue_text("config.line", lang, line=self.line) if self.line else ""
        message = self.message_zh if lang == "zh-CN" and self.message_zh else self.message
        return f"{where}{self.key or '(file)'}: {message}"

    def both(self) -> str:
        """``line 3: mqtt.url: <zh-CN> / <English>``: what `config check` prints."""
        return f"{self.text('en').removesuffix(self.message)}{self.message_zh} / {self.message}" \
            if self.message_zh else self.text("en")

    def __str__(self) -> str:
        return self.text("en")


class ConfigError(Exception):
    def __init__(self, problems: list[Problem], path: str = ""):
        self.problems = problems
        self.path = path
        super().__init__("\n".join([f"{path}: {len(problems)} problem(s)"] + [str(p) for p in problems]))


class Section(Mapping[str, Any]):
    """A read-only section of the station file: ``cfg.devices.printer.target`` or ``cfg.mqtt["url"]``."""

    def __init__(self, data: Mapping[str, Any]):
        self._data = {k: Section(v) if isinstance(v, Mapping) else v for k, v in data.items()}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Section({self._data!r})"

    def to_dict(self) -> dict[str, Any]:
        return {k: v.to_dict() if isinstance(v, Section) else v for k, v in self._data.items()}


@dataclass(frozen=True)
class Config:
    """A checked station file with every default filled in (defaults live in the schema)."""

    station: Section
    sampling: Section
    authority: Section
    volunteers: Section
    devices: Section
    store: Section
    mqtt: Section
    ui: Section

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts (JSON-able), e.g. for the status topic or doctor."""
        return {name: getattr(self, name).to_dict() for name in self.__dataclass_fields__}

    @property
    def keys(self):
        """Trusted authority keys (firmware_app.qr.Keys)."""
        from firmware_app import qr

        return qr.Keys.from_base64(list(self.authority.sampling_code_keys), list(self.authority.operator_keys))

    @property
    def district_keys(self):
        """The district's keys by key id: pushes count only when signed by one (firmware_app.signedpush)."""
        from firmware_app import signedpush

        return signedpush.district_keys(list(self.authority.get("district_keys", [])))


def schema() -> dict:
    return json.loads(resources.files("firmware_app").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _find_line(lines: tuple[dict, dict], key: str) -> int | None:
    """Line of ``key`` (dotted, indices dropped) in the TOML text (its ``_key_lines``), else of
    its deepest section header."""
    parts = tuple(re.sub(r"\[\d+\]", "", key).split(".")) if key else ()
    keys, headers = lines
    if parts in keys:
        return keys[parts]
    return next((headers[parts[:n]] for n in range(len(parts), 0, -1) if parts[:n] in headers), None)


def _key_lines(text: str) -> tuple[dict, dict]:
    """The first line of each dotted key and of each section header: read once per check, not
    once per problem (a file with thousands of problems took seconds)."""
    keys: dict[tuple, int] = {}
    headers: dict[tuple, int] = {}
    table: tuple = ()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        header = re.match(r"^\[\s*([^\[\]]+?)\s*\]", line)
        if header:
            table = tuple(p.strip().strip('"') for p in header.group(1).split("."))
            headers.setdefault(table, n)
            continue
        m = re.match(r'^"?([A-Za-z0-9_-]+)"?\s*=', line)
        if m:
            keys.setdefault(table + (m.group(1),), n)
    return keys, headers


def _table(data: Any, *path: str) -> dict:
    """data[path[0]][path[1]]... if every step is a table, else {}: a key given a value of
    the wrong type (``devices = 1``) is the schema's problem to report, not a crash here."""
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def _pattern_problem(pattern: str) -> tuple[str, str] | None:
    if len(pattern) > MAX_PATTERN:
        return both("config.pattern_long", n=MAX_PATTERN)
    if _max_nesting(pattern, "(", ")") > MAX_NESTING:
        return both("config.pattern_nested", n=MAX_NESTING)
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:  # "a{99999999999}": OverflowError
        return both("config.pattern_bad", reason=exc)
    return None


def _max_nesting(text: str, opening: str = "[{", closing: str = "]}") -> int:
    depth = deepest = 0
    # only the brackets, picked out by the regex engine: a Python step per character was most
    # of the check's time on a long text (the fuzz run's station_file and pushed_files)
    for ch in re.sub(f"[^{re.escape(opening + closing)}]+", "", text):
        if ch in opening:
            depth += 1
            deepest = max(deepest, depth)
        elif ch in closing:
            depth = max(0, depth - 1)
    return deepest


def _non_finite(data: Any, path: tuple = ()) -> Iterator[str]:
    """Dotted keys of every NaN or infinity (TOML has ``nan``/``inf``; every comparison with
    NaN is false, so the schema's minimum/maximum let it through)."""
    if isinstance(data, float) and not math.isfinite(data):
        yield _dotted(path)
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _non_finite(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _non_finite(value, path + (i,))


def _semantic(data: dict, allow_demo_keys: bool) -> Iterator[tuple[str, tuple[str, str]]]:
    """What the schema cannot say, as (key, (zh, en)). Only for values whose basic type is already right."""
    from firmware_app import qr

    for key in _non_finite(data):
        yield key, both("config.not_finite")
    authority = _table(data, "authority")
    for name in ("sampling_code_keys", "operator_keys", "district_keys"):
        keys = authority.get(name)
        if isinstance(keys, list):
            for i, key in enumerate(keys):
                if isinstance(key, str):
                    try:
                        qr.public_key_from_base64(key)
                    except ValueError as exc:
                        yield f"authority.{name}[{i}]", both("config.bad_key", reason=exc)
                    if key in DEMO_KEYS and not allow_demo_keys:
                        yield f"authority.{name}[{i}]", both("config.demo_key")
    pattern = _table(data, "sampling").get("tube_pattern")
    if isinstance(pattern, str) and (problem := _pattern_problem(pattern)):
        yield "sampling.tube_pattern", problem
    target = _table(data, "devices", "printer").get("target")
    if isinstance(target, str) and not PRINTER_TARGET.fullmatch(target):
        yield "devices.printer.target", both("config.printer_target")
    mqtt = _table(data, "mqtt")
    url = mqtt.get("url")
    if any(isinstance(u, str) and "mqtts://" in u for u in (url if isinstance(url, list) else [url])) \
            and not mqtt.get("ca_file"):
        yield "mqtt.ca_file", both("config.ca_file")
    yield from _mqtt_identity(data)


def _mqtt_identity(data: dict) -> Iterator[tuple[str, tuple[str, str]]]:
    """The broker ACL grants a station only swab/v1/<its login>/..., and an MQTT 3.1.1
    broker acknowledges a denied publish and drops it: a login that is not this station's
    district/site/table would see every record acknowledged and none delivered."""
    station, mqtt = _table(data, "station"), _table(data, "mqtt")
    parts = [station.get(k) for k in ("district", "site", "table")]
    if not mqtt.get("url") or not all(isinstance(p, str) for p in parts):
        return
    if mqtt.get("login") == "any":  # another broker's login form (RabbitMQ "vhost:user"), its own ACL
        return
    root = "/".join(str(p) for p in parts)
    username = mqtt.get("username")
    if isinstance(username, str) and username and username != root:
        yield "mqtt.username", both("config.wrong_username", username=username, root=root)
    cert_file = mqtt.get("cert_file")
    if isinstance(cert_file, str) and cert_file:
        cn = _certificate_cn(cert_file)
        if cn is not None and cn != root:
            yield "mqtt.cert_file", both("config.wrong_cn", cn=cn, root=root)


def _certificate_cn(path: str) -> str | None:
    """The certificate's common name; None if the file cannot be read yet (provisioning
    checks the station file before its certificate is installed)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        with open(path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError):
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


# jsonschema's validator -> the catalogue key that says it in zh-CN (its English message is kept)
_SCHEMA_WORDS = {"type": "config.schema_type", "enum": "config.schema_choice", "const": "config.schema_choice",
                 "minimum": "config.schema_range", "maximum": "config.schema_range",
                 "exclusiveMinimum": "config.schema_range", "exclusiveMaximum": "config.schema_range",
                 "minLength": "config.schema_length", "maxLength": "config.schema_length",
                 "minItems": "config.schema_length", "maxItems": "config.schema_length"}


def _fill_defaults(instance: Any, schema_node: dict) -> Any:
    if not isinstance(instance, dict):
        return instance
    out = dict(instance)
    for key, sub in schema_node.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = json.loads(json.dumps(sub["default"]))
        if key in out:
            out[key] = _fill_defaults(out[key], sub)
    return out


def _check(text: str, allow_demo_keys: bool = False) -> tuple[list[Problem], dict | None]:
    import jsonschema  # only when checking: keeps it out of every other command's start-up

    data, problem = _parse_toml(text)
    if problem is not None:
        return [problem], None
    the_schema, validator = _checker(jsonschema)
    problems = []
    lines: tuple[dict, dict] | None = None

    def line_of(key: str) -> int | None:
        nonlocal lines
        if lines is None:
            lines = _key_lines(text)
        return _find_line(lines, key)

    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        key = _dotted(err.absolute_path)
        message = err.message
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            for name in extra:
                full = f"{key}.{name}" if key else name
                problems.append(Problem.of(full, line_of(full), "config.unknown_key"))
            continue
        if err.validator == "required":
            missing = re.match(r"'([^']+)'", message)
            full = f"{key}.{missing.group(1)}" if key and missing else (missing.group(1) if missing else key)
            problems.append(Problem.of(full, line_of(key), "config.missing_key"))
            continue
        if err.validator == "pattern":
            problems.append(Problem.of(key, line_of(key), "config.not_matching", value=repr(err.instance),
                                       pattern=err.validator_value))
            continue
        words = _SCHEMA_WORDS.get(str(err.validator), "config.schema_other")
        problems.append(Problem.of(key, line_of(key), words, detail=message))
    for key, (message_zh, message_en) in _semantic(data, allow_demo_keys):
        problems.append(Problem(key, line_of(key), message_en, message_zh))
    problems.sort(key=lambda p: (p.line or 0, p.key))
    return problems, (_fill_defaults(data, the_schema) if not problems else None)


def _parse_toml(text: str) -> tuple[dict, Problem | None]:
    """The TOML document, or the one problem that stops it being read; never an exception."""
    if not isinstance(text, str):
        return {}, Problem.of("", None, "config.not_text")
    if len(text) > MAX_TEXT:
        return {}, Problem.of("", None, "config.too_large", n=len(text), most=MAX_TEXT)
    if _max_nesting(text) > MAX_NESTING:
        return {}, Problem.of("", None, "config.too_nested", n=MAX_NESTING)
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        return {}, Problem.of("", int(m.group(1)) if m else None, "config.bad_toml", reason=exc)
    except (RecursionError, ValueError, OverflowError, MemoryError) as exc:  # bounded above; never a traceback
        return {}, Problem.of("", None, "config.bad_toml_kind", reason=type(exc).__name__)


_VALIDATOR = None
_CHECKER = None


def _checker(jsonschema):
    """The schema and its validator, read and built once (neither is changed by a check):
    reading and parsing the schema file for every check was a tenth of a check's time."""
    global _CHECKER
    if _CHECKER is None:
        the_schema = schema()
        _CHECKER = (the_schema, _validator_class(jsonschema)(the_schema))
    return _CHECKER


def _validator_class(jsonschema):
    """Draft 2020-12 with ``pattern`` matched whole: JSON Schema's ``^...$`` is searched
    with Python's ``$``, which also matches before a final newline ("t03\n" would pass)."""
    global _VALIDATOR
    if _VALIDATOR is None:
        base = jsonschema.Draft202012Validator
        search = base.VALIDATORS["pattern"]

        def pattern(validator, patrn, instance, schema_node):
            yield from search(validator, patrn, instance, schema_node)
            if validator.is_type(instance, "string") and re.search(r"\n\Z", instance) and \
                    re.search(patrn, instance) and not re.search(patrn.replace("$", r"\Z"), instance):
                yield jsonschema.ValidationError(f"{instance!r} ends in a line break")

        _VALIDATOR = jsonschema.validators.extend(base, {"pattern": pattern})
    return _VALIDATOR


def ui_port_of(path: str) -> int | None:
    """The screen port of a station file that failed its checks, if it can be read at all
    (the refusal screen: any file, however broken, must not crash it)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_TEXT + 1)
    except (OSError, UnicodeDecodeError):
        return None
    data, problem = _parse_toml(text)
    if problem is not None:
        return None
    port = _table(data, "ui").get("port", 8080)
    return port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else None


def check_text(text: str, allow_demo_keys: bool = False) -> list[Problem]:
    """Every problem of a station file's text (empty list: the file is good)."""
    return _check(text, allow_demo_keys)[0]


def parse_text(text: str, path: str = "<text>", allow_demo_keys: bool = False) -> Config:
    problems, data = _check(text, allow_demo_keys)
    if problems or data is None:  # no problems means the defaults-filled data
        raise ConfigError(problems, path)
    return Config(**{name: Section(data.get(name, {})) for name in Config.__dataclass_fields__})


def load(path: str, allow_demo_keys: bool = False) -> Config:
    """Read and check a station file; raise ConfigError listing every problem.

    allow_demo_keys: for `simulate` and training only (see DEMO_KEYS)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError([Problem.of("", None, "config.unreadable", reason=exc.strerror)], path) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem.of("", None, "config.not_utf8")], path) from None
    return parse_text(text, path, allow_demo_keys)


def cli(argv: list[str]) -> int:
    def words(key: str, **values: Any) -> str:  # zh-CN / English on one line
        return " / ".join(both(key, **values))

    parser = argparse.ArgumentParser(prog="swabkiosk config", description=words("config.description"))
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("check", help=words("config.help_check"))
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help=words("config.help_json"))
    p.add_argument("--allow-demo-keys", action="store_true", help=words("config.help_demo"))
    args = parser.parse_args(argv)
    try:
        load(args.file, args.allow_demo_keys)
        problems: list[Problem] = []
    except ConfigError as exc:
        problems = exc.problems
    if args.json:
        print(json.dumps({"file": args.file, "ok": not problems, "problems": [asdict(p) for p in problems]}, ensure_ascii=False))
    elif problems:
        print(words("config.header", file=args.file, n=len(problems)), file=sys.stderr)
        for problem in problems:
            print(f"{args.file}:{problem.both()}", file=sys.stderr)
    else:
        print(words("config.ok", file=args.file))
    return 1 if problems else 0
