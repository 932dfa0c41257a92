"""The signed push envelope (firmware_app.signedpush) and `swabkiosk district-sign`."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware_app import signedpush
from tests.push_fixtures import DISTRICT_KEY, DISTRICT_PUB, signed
from tests.qr_fixtures import STRANGER_KEY

ROOT = Path(__file__).resolve().parents[1]
KEYS = signedpush.district_keys([DISTRICT_PUB])
HERE = {"device_id": "sim-t03", "district": "dongguan", "site": "guancheng"}


def check(text, last=0, now=None, kind="volunteers"):
    return signedpush.verify(text, KEYS, kind=kind, now=time.time() if now is None else now, last_version=last, **HERE)


def test_a_good_push_verifies_and_every_bad_one_says_why():
    assert check(signed("volunteers", [1], 3)).body == [1]
    assert check(signed("volunteers", [1], 3, district="dongguan", site="guancheng")).version == 3
    cases = {
        "unsigned": [{"cert_id": "x"}],
        "unknown_key": signed("volunteers", [], 3, key=STRANGER_KEY),
        "other_station": signed("volunteers", [], 3, device_id="sim-t04"),
        "malformed": signed("volunteers", [], 3)[:-3] + "!!!",
        "expired": signed("volunteers", [], 3, issued_at=1000),
    }
    for reason, text in cases.items():
        with pytest.raises(signedpush.PushRefused) as exc:
            check(text)
        assert exc.value.reason == reason, (reason, str(exc.value))
    with pytest.raises(signedpush.PushRefused) as exc:
        check(signed("volunteers", [], 3), last=3)
    assert exc.value.reason == "replay"
    with pytest.raises(signedpush.PushRefused) as exc:
        check(signed("volunteers", [], 3), kind="config")
    assert exc.value.reason == "wrong_kind"
    with pytest.raises(signedpush.PushRefused) as exc:
        signedpush.verify(signed("volunteers", [], 3), {}, kind="volunteers", now=time.time(), last_version=0, **HERE)
    assert exc.value.reason == "no_district_key"


def test_district_sign_makes_the_payload_to_publish(tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = tmp_path / "district.pem"
    key.write_bytes(DISTRICT_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    people = tmp_path / "volunteers.json"
    people.write_text(json.dumps({"volunteers": [{"cert_id": "DG-V-0009", "name": "王志愿", "expires": "2099-01-01"}]}))
    out = subprocess.run([sys.executable, "-m", "firmware_app", "district-sign", "volunteers", str(people), "--key",
                          str(key), "--device-id", "sim-t03", "--txn", "v7", "--version", "7"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["txn"] == "v7"
    push = check(payload["args"]["volunteers"][0])
    assert push.version == 7 and push.body["volunteers"][0]["cert_id"] == "DG-V-0009"


def test_what_a_pushed_station_file_may_not_change():
    from firmware_app import pushed

    running = {"authority": {"operator_keys": ["a"]}, "mqtt": {"url": "mqtts://b", "keepalive": 30,
               "password_file": "/etc/swabkiosk/mqtt-password"}, "ui": {"host": "127.0.0.1", "port": 8080},
               "devices": {"idcard": {"port": "/dev/ttyUSB0"}}, "sampling": {"mode": "10"}}
    new = json.loads(json.dumps(running))
    new["sampling"]["mode"] = "20"
    new["mqtt"]["keepalive"] = 60
    assert pushed.locked_changes(running, new) == []
    new["ui"]["port"] = 8081  # the browser's URL comes from provisioning's drop-in: a push would blank the screen
    new["authority"]["operator_keys"] = ["evil"]
    new["mqtt"]["password_file"] = "/etc/swabkiosk/client.key"
    new["ui"]["host"] = "0.0.0.0"
    new["devices"]["idcard"]["port"] = "/etc/shadow"
    new["devices"]["scanner"] = {"port": "/dev/ttyACM0"}
    assert pushed.locked_changes(running, new) == ["authority.operator_keys", "devices.idcard.port",
                                                   "devices.scanner.port", "mqtt.password_file", "ui.host", "ui.port"]


def test_every_refusal_says_why_in_zh_cn_and_in_english():
    """issue 14 item 3: a refused push's answer carries zh-CN words (.message) beside the English."""
    cases = [signed("volunteers", [], 3, key=STRANGER_KEY), signed("volunteers", [], 3, device_id="sim-t04"),
             signed("volunteers", [], 3)[:-3] + "!!!", signed("volunteers", [], 3, issued_at=1000), "plain text"]
    for text in cases:
        with pytest.raises(signedpush.PushRefused) as exc:
            check(text)
        assert re.search(r"[\u3400-\u9fff]", exc.value.message), exc.value.reason
        assert str(exc.value) == exc.value.message_en and not re.search(r"[\u3400-\u9fff]", exc.value.message_en)
    with pytest.raises(signedpush.PushRefused) as exc:
        check(signed("volunteers", [], 3), last=3)
    assert "不比上次接受的 3 新" in exc.value.message and "not newer than 3" in str(exc.value)
