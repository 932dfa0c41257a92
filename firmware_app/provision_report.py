"""First-boot provisioning, telling the technician: every problem on stderr (the journal), in
/run/swabkiosk/provision-errors.json (the kiosk screen) and on a standalone page the browser
shows while the daemon cannot run."""

from __future__ import annotations

import html
import json
import os
import sys
import time

from firmware_app.catalogue import both, en
from firmware_app.provision_install import write_atomic
from firmware_app.provision_layout import ERRORS_FILE, ERRORS_PAGE, STATION_FILE, Outcome, Owner, Paths, problem_text
from firmware_app.provision_network import current_kiosk_url


def report(paths: Paths, owner: Owner, outcome: Outcome, kept_previous: bool) -> None:
    """Errors for the journal (stderr), the daemon's screen (JSON) and the browser (HTML)."""
    status_json = paths.run / ERRORS_FILE
    page = paths.screen / ERRORS_PAGE
    if outcome.installed and not outcome.warnings:
        status_json.unlink(missing_ok=True)
        page.unlink(missing_ok=True)
        return
    if outcome.installed:
        message, message_en = both("provision.installed_with_warnings")
        level = "warning"
    else:
        key = "provision.not_installed_kept" if kept_previous else "provision.not_installed_none"
        message, message_en = both(key, count=len(outcome.problems))
        level = "error"
    doc = {
        "schema": "swabkiosk.provision/1",
        "level": level,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": str(paths.boot / STATION_FILE),
        "installed": outcome.installed,
        "kept_previous": kept_previous,
        "message": message,
        "message_en": message_en,
        "problems": outcome.problems,
        "warnings": outcome.warnings,
        "kiosk_url": current_kiosk_url(paths),
    }
    for p in outcome.problems:
        key = p["key"] or en("provision.journal_file")
        where = en("provision.journal_where", key=key, line=p["line"]) if p["line"] else key
        print(en("provision.journal_line", where=where, message=p["message"]), file=sys.stderr)
    for w in outcome.warnings:
        print(en("provision.journal_warning", warning=w), file=sys.stderr)
    print(en("provision.journal_summary", message=message_en), file=sys.stderr)
    if not paths.run.exists():
        # As swabkiosk.service's RuntimeDirectory= would make it, so the daemon can read it.
        paths.run.mkdir(parents=True)
        os.chown(paths.run, owner.uid, owner.gid)
        os.chmod(paths.run, 0o750)
    write_atomic(status_json, json.dumps(doc, ensure_ascii=False, indent=1), 0o640, 0, owner.gid)
    paths.screen.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.screen, 0o755)
    write_atomic(page, render_page(doc), 0o644)


def render_page(doc: dict) -> str:
    """A self-contained page for the kiosk browser while the daemon cannot run."""
    rows = "".join(
        f"<tr><td>{html.escape(p['key'] or '')}</td><td>{p['line'] or ''}</td><td>{html.escape(p['message'])}</td></tr>"
        for p in doc["problems"]
    )
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in doc["warnings"])
    title, head_key, head_line, head_problem = (html.escape(problem_text(f"provision.page_{k}"))
                                                for k in ("title", "key", "line", "problem"))
    return f"""<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<title>swabkiosk: {title}</title>
<style>body{{font:22px sans-serif;margin:2em;background:{'#fff4e5' if doc['level'] == 'warning' else '#fde8e8'}}}
table{{border-collapse:collapse}}td{{border:1px solid #999;padding:.3em .6em}}</style>
<h1>{html.escape(doc['message'])}</h1><p>{html.escape(doc['message_en'])}</p>
<p>{html.escape(doc['source'])} — {html.escape(doc['at'])}</p>
<table><tr><td>{head_key}</td><td>{head_line}</td><td>{head_problem}</td></tr>{rows}</table>
<ul>{warnings}</ul>
<script>/* Leave for the kiosk page as soon as the daemon answers. */
const kiosk={json.dumps(doc["kiosk_url"])};
setInterval(()=>fetch(kiosk,{{mode:"no-cors"}}).then(()=>location.replace(kiosk),()=>{{}}),5000)</script>
</html>
"""
