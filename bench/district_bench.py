"""The district receiver's figures: ingest rate into SQLite and PostgreSQL, `district tube` at
millions of stored records, and the gap check for 20,000 stations.

* ingest: records as they come off the broker (JSON bytes + topic) through the receiver's own
  path, ``parse_record`` + ``DistrictDB.insert`` (exactly-once insert and coverage merge) in
  the receiver's batches of 500, from 20 stations interleaved.
* tube: the database is filled by a generator straight into the tables (executemany / COPY),
  10 people per tube, then ``swabkiosk district tube TUBE_ID --db DB --json`` is run as a
  command (Python start-up included) for tubes spread over the whole range; the in-process
  query time is reported beside it. Run at several sizes to show the time does not grow.
* gaps: the coverage runs 20,000 stations x 10,000 seqs leave (one run per station, 1 in
  100 stations with a hole) and ``DistrictDB.stations()``: one query over runs, no records.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time

from bench.common import ROOT, median
from district.db import DistrictDB, parse_record

STATIONS = 20


def _body(dev: str, seq: int, tube: str) -> bytes:
    rec = {"schema": "swab.record/1", "record_id": f"{dev}-{seq:010d}", "seq": seq, "kind": "sample",
           "device_id": dev, "district": "bench", "site": "s01", "table": dev[-3:],
           "at": "2026-11-18T19:09:10.000+08:00", "clock_synced": True, "operator": "op-0001", "tube_id": tube,
           "person": {"name": "张三丰", "id_number": "11010519491231002X", "phone": "13800138000",
                      "id_type": "resident"}, "colour": "green", "source": "idcard", "single_reason": None,
           "mode": "10", "position": (seq - 1) % 10 + 1}
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def measure_ingest(target: str, n: int, batch: int = 500) -> dict:
    msgs = []
    per = n // STATIONS
    for i in range(per):
        for s in range(STATIONS):
            dev = f"bench-t{s:03d}"
            seq = i + 1
            msgs.append((f"swab/v1/bench/s01/t{s:03d}/records", _body(dev, seq, f"{dev}-{(seq - 1) // 10:07d}")))
    db = DistrictDB(target)
    try:
        t0 = time.perf_counter()
        new = 0
        for i in range(0, len(msgs), batch):
            recs = [parse_record(t, p) for t, p in msgs[i:i + batch]]
            new += db.insert(recs)
        took = time.perf_counter() - t0
        dup0 = time.perf_counter()
        again = db.insert([parse_record(t, p) for t, p in msgs[:batch]])  # a resend's duplicates
        dup_s = time.perf_counter() - dup0
        gaps = db.stations()
        assert new == len(msgs) and again == 0 and all(not s["gaps"] for s in gaps.values())
    finally:
        db.close()
    return {"records": len(msgs), "s": round(took, 2), "per_s": round(len(msgs) / took),
            "duplicate_batch_ms": round(dup_s * 1000, 1)}


def build(target: str, n: int, chunk: int = 200_000) -> float:
    """n sample records (10 per tube, 20 stations) straight into the tables; returns seconds."""
    db = DistrictDB(target)
    t0 = time.perf_counter()
    per = n // STATIONS
    try:
        if not db.pg:
            db.conn.execute("PRAGMA synchronous=OFF")
        for start in range(0, per, chunk // STATIONS):
            stop = min(per, start + chunk // STATIONS)
            rows = []
            for s in range(STATIONS):
                dev = f"bench-t{s:03d}"
                for seq in range(start + 1, stop + 1):
                    tube = f"{dev}-{(seq - 1) // 10:07d}"
                    rows.append((f"{dev}-{seq:010d}", dev, seq, "sample", tube, None,
                                 f"swab/v1/bench/s01/t{s:03d}/records", _body(dev, seq, tube).decode(), 0.0))
            db.begin()
            if db.pg:
                with db.conn.cursor().copy("COPY records (record_id, device_id, seq, kind, tube_id, ref, topic, "
                                           "body, received_at) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                db.conn.executemany("INSERT INTO records (record_id, device_id, seq, kind, tube_id, ref, topic, body, "
                                    "received_at) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            db.commit()
        db.begin()
        for s in range(STATIONS):
            dev = f"bench-t{s:03d}"
            db.execute("INSERT INTO stations (device_id, root, records, last_seq) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (device_id) DO NOTHING", (dev, f"bench/s01/t{s:03d}", per, per))
            db.execute("INSERT INTO coverage (device_id, lo, hi) VALUES (?, 1, ?) ON CONFLICT DO NOTHING", (dev, per))
        db.commit()
        if db.pg:
            db.conn.autocommit = True
            db.execute("VACUUM ANALYZE records")
            db.conn.autocommit = False
        else:
            db.execute("ANALYZE")
    finally:
        db.close()
    return time.perf_counter() - t0


def measure_tube(target: str, n: int, probes: int = 7) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rng = random.Random(n)
    per = n // STATIONS
    cmd_s, query_ms = [], []
    db = DistrictDB(target)
    try:
        for _ in range(probes):
            dev = f"bench-t{rng.randrange(STATIONS):03d}"
            tube = f"{dev}-{rng.randrange(per // 10):07d}"
            q0 = time.perf_counter()
            recs = db.tube(tube)
            query_ms.append((time.perf_counter() - q0) * 1000)
            assert len(recs) == 10, (tube, len(recs))
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "firmware_app", "district", "tube", tube, "--db", target,
                                  "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
            cmd_s.append(time.perf_counter() - t0)
            assert out.returncode == 0, out.stderr
            assert len(json.loads(out.stdout)["records"]) == 10
    finally:
        db.close()
    return {"records": n, "command_s_median": round(median(cmd_s), 3), "command_s_max": round(max(cmd_s), 3),
            "query_ms_median": round(median(query_ms), 2)}


def measure_gaps(target: str, stations: int = 20_000, seqs: int = 10_000) -> dict:
    db = DistrictDB(target)
    try:
        db.begin()
        rows_st, rows_cov = [], []
        for s in range(stations):
            dev = f"gap-{s:05d}"
            rows_st.append((dev, f"gap/s{s // 100:03d}/t{s % 100:02d}", seqs, seqs))
            if s % 100 == 7:  # a hole in 1 station of 100
                rows_cov += [(dev, 1, 4999), (dev, 5011, seqs)]
            else:
                rows_cov.append((dev, 1, seqs))
        cur = db.conn.cursor()
        cur.executemany(db.sql("INSERT INTO stations (device_id, root, records, last_seq) VALUES (?, ?, ?, ?)"), rows_st)
        cur.executemany(db.sql("INSERT INTO coverage (device_id, lo, hi) VALUES (?, ?, ?)"), rows_cov)
        db.commit()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            st = db.stations()
            times.append(time.perf_counter() - t0)
        open_ = sum(1 for x in st.values() if x["gaps"])
        one0 = time.perf_counter()
        db.stations("gap-00007")
        one_ms = (time.perf_counter() - one0) * 1000
    finally:
        db.close()
    return {"stations": stations, "seqs_each": seqs, "with_gaps": open_, "all_stations_s": round(median(times), 3),
            "one_station_ms": round(one_ms, 2)}


def measure(n_ingest: int, tube_sizes: list[int], pg_url: str | None) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="district-bench-") as d:
        out["ingest_sqlite"] = measure_ingest(os.path.join(d, "ingest.db"), n_ingest)
        out["gaps_sqlite"] = measure_gaps(os.path.join(d, "gaps.db"))
        out["tube_sqlite"] = []
        for size in tube_sizes:
            path = os.path.join(d, f"tube-{size}.db")
            built = build(path, size)
            out["tube_sqlite"].append({**measure_tube(path, size), "build_s": round(built, 1)})
            os.remove(path)
        if pg_url:
            from tests.pg import fresh_database

            out["ingest_postgres"] = measure_ingest(fresh_database(pg_url, "bench_ingest"), n_ingest)
            out["gaps_postgres"] = measure_gaps(fresh_database(pg_url, "bench_gaps"))
            out["tube_postgres"] = []
            for size in tube_sizes:
                url = fresh_database(pg_url, f"bench_tube_{size}")
                built = build(url, size)
                out["tube_postgres"].append({**measure_tube(url, size), "build_s": round(built, 1)})
    return out


if __name__ == "__main__":  # python -m bench.district_bench N_INGEST SIZE[,SIZE...] [--pg]
    from tests.pg import postgres_server, unavailable

    sizes = [int(x) for x in sys.argv[2].split(",")]
    if "--pg" in sys.argv and not unavailable():
        with postgres_server() as url:
            print(json.dumps(measure(int(sys.argv[1]), sizes, url), indent=1))
    else:
        print(json.dumps(measure(int(sys.argv[1]), sizes, None), indent=1))


def measure_end_to_end(n: int = 20_000) -> dict:
    """The receiver process itself, off the broker: `swabkiosk district run` (SQLite) subscribes once
    and stops; n records are published (raw paho, QoS 1) into its session on our Mosquitto config;
    then it starts again and is timed from start until the database holds them all (start-up and
    the broker's delivery included)."""
    import paho.mqtt.client as mqtt

    from bench.common import STATION_PASSWORD, USERS, start_broker
    from tests.broker import PASSWORDS, RECEIVER

    with tempfile.TemporaryDirectory(prefix="district-e2e-") as d:
        broker = start_broker(d)
        # the shipped district.conf persistence (save every 60 s), not the test config's save-on-every-change,
        # which held an offline session's queue to ~135 messages/s
        broker.kill()
        broker.conf.write_text(broker.conf.read_text().replace("autosave_on_changes true", "autosave_on_changes false")
                               .replace("autosave_interval 1\n", "autosave_interval 60\n"))
        broker.start()
        db_path = os.path.join(d, "district.db")
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        cmd = [sys.executable, "-m", "firmware_app", "district", "run", "--broker",
               f"mqtt://{RECEIVER}:{PASSWORDS[RECEIVER]}@127.0.0.1:{broker.district_port}", "--db", db_path]

        def start():
            return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def count():
            try:
                db = DistrictDB(db_path)
            except Exception:  # noqa: BLE001 - not made yet
                return 0
            try:
                return db.rows("SELECT count(*) FROM records")[0][0]
            finally:
                db.close()

        rx = start()
        try:
            time.sleep(2.5)  # its session and subscriptions are on the broker
            rx.terminate()
            rx.wait(20)
            pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-pub")
            pub.username_pw_set(USERS[0], STATION_PASSWORD)  # a station of the bench broker
            pub.connect("127.0.0.1", broker.port)
            pub.loop_start()
            root = f"swab/v1/{USERS[0]}/records"
            infos = [pub.publish(root, _body("e2e-dev", s, f"e2e-{(s - 1) // 10:07d}"), qos=1) for s in range(1, n + 1)]
            for info in infos:
                info.wait_for_publish(120)
            pub.loop_stop()
            pub.disconnect()
            t0 = time.perf_counter()
            rx = start()
            got = 0
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and got < n:
                time.sleep(0.1)
                got = count()
            took = time.perf_counter() - t0
        finally:
            rx.terminate()
            try:
                rx.wait(30)
            except subprocess.TimeoutExpired:
                rx.kill()
                rx.wait()
            broker.kill()
    return {"records": n, "stored": got, "s": round(took, 2), "per_s": round(got / took)}
