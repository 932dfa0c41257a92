"""District commands over a real Mosquitto reach the kiosk and are answered on
cmd/<name>/response: a volunteer-list push is applied and kept, a broken station
file pushed is refused with its problems, a good one is saved and restarts the kiosk."""

import json
import threading
from urllib.parse import quote

import pytest

from firmware_app import config
from firmware_app.daemon import Kiosk
from firmware_app.sdnotify import Notifier
from firmware_app.simulate import LIVE_CAMERA
from hw_mocks.table import Table
from tests.push_fixtures import config_args, volunteers_args, with_district_key
from tests.broker import PASSWORDS, STATION_A, Collector, password_broker  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(60)
ROOT = f"swab/v1/{STATION_A}/"


def response(collector, name, txn, timeout=15):
    def found(c):
        return any(t == ROOT + f"cmd/{name}/response" and json.loads(p)["txn"] == txn for t, p, _ in c.messages)

    assert collector.wait_for(found, timeout)
    return next(json.loads(p) for t, p, _ in collector.messages
                if t == ROOT + f"cmd/{name}/response" and json.loads(p)["txn"] == txn)


def test_district_commands_are_applied_and_answered(password_broker, tmp_path):
    url = f"mqtt://{quote(STATION_A, safe='')}:{PASSWORDS[STATION_A]}@127.0.0.1:{password_broker.port}"
    table = Table(tmp_path / "table", devices=("scanner",)).start()
    station_file = tmp_path / "station.toml"
    station_file.write_text(with_district_key(table.station_file(str(tmp_path / "data"), broker=url)))
    restarted = threading.Event()
    kiosk = Kiosk(config.load(str(station_file)), use_ui=False, notifier=Notifier({}), device_overrides=LIVE_CAMERA,
                  config_path=str(station_file), restart=restarted.set)
    kiosk.start()
    collector = Collector(password_broker.port)
    try:
        assert collector.wait_for(lambda c: any(t == ROOT + "availability" and p == b"online"
                                                for t, p, _ in c.messages), 15)
        people = {"volunteers": [{"cert_id": "DG-V-0009", "name": "王志愿", "expires": "2099-01-01"}]}
        collector.client.publish(ROOT + "cmd/push_volunteers",
                                 json.dumps({"txn": "t1", "args": volunteers_args(people["volunteers"], 1)}), qos=1)
        assert response(collector, "push_volunteers", "t1")["ok"] is True
        saved = json.loads((tmp_path / "data" / "pushed" / "volunteers.json").read_text())
        assert [v["cert_id"] for v in saved["volunteers"]] == ["DG-V-0009"]  # kept for the next start

        collector.client.publish(ROOT + "cmd/push_config", json.dumps({"txn": "t2", "args": config_args("[station\n", 1)}),
                                 qos=1)
        refused = response(collector, "push_config", "t2")
        assert refused["ok"] is False and "not valid TOML" in refused["message"]
        assert not restarted.is_set()

        good = station_file.read_text().replace("box_capacity = 50", "box_capacity = 40")
        collector.client.publish(ROOT + "cmd/push_config", json.dumps({"txn": "t3", "args": config_args(good, 2)}), qos=1)
        assert response(collector, "push_config", "t3")["ok"] is True
        assert restarted.wait(5)
        assert "box_capacity = 40" in (tmp_path / "data" / "pushed" / "swabkiosk.toml").read_text()
        assert "box_capacity = 50" in station_file.read_text()  # the provisioned file is never rewritten
    finally:
        collector.close()
        kiosk.stop()
        table.stop()
