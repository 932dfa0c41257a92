"""Scan to label: a complete ID-card answer frame (or a decoded QR text) to durable record
and label bytes at the printer, through the real codec, station, store and printer shell.

The kiosk is ``firmware_app.daemon.Kiosk`` (station loop, store, printer shell under its
supervisor, uplink offline) with the printer mock on TCP. The table works in mode "1"
(one person per tube) so every person gets a tube label: each input is the full path.

Clock starts when the frame's bytes are handed to the SAM codec (``ResponseDecoder``)
or, for QR, when the decoded text is posted; it stops when the printer mock has parsed
the label out of the ESC/POS bytes it received. The record is stored before the label
is sent (runtime order), so label bytes at the printer imply a durable record. Between
people the printer finishes the previous label (its settle time, a physical wait, is
not counted).
"""

from __future__ import annotations

import tempfile
import time

from bench.common import KioskDriver, UniquePeople, percentile


def card_frame(card) -> bytes:
    """The reader's answer to "read base info" for this card, as it arrives on the wire."""
    from hw_mocks.idcard_reader import fake_photo, frame, text_block

    text, photo = text_block(card), fake_photo(card.id_number)
    payload = len(text).to_bytes(2, "big") + len(photo).to_bytes(2, "big") + text + photo
    return frame(0x90, payload)


def decode_card(data: bytes):
    """SAM codec: bytes -> Response -> IdCard (what drivers.idcard_reader does with them)."""
    from drivers import idcard
    from firmware_app.model import CardRead

    decoder = idcard.ResponseDecoder()
    decoder.receive_data(data)
    answer = decoder.next_event()
    if not isinstance(answer, idcard.Response) or not answer.is_(idcard.SW_OK):
        raise RuntimeError(f"codec did not return a good answer: {answer!r}")
    return CardRead(idcard.decode_base_info(answer.data))


def measure(people: int = 400) -> dict:
    from firmware_app.model import CodeScanned, PrintLabel

    with tempfile.TemporaryDirectory() as d:
        driver = KioskDriver(d, f"{d}/data", devices=("printer",), mode="1").start()
        try:
            printer = driver.table.printer
            deadline = time.monotonic() + 20
            while not driver.kiosk.runtime.snapshot.get("devices", {}).get("printer", {}).get("ok"):
                if time.monotonic() > deadline:
                    raise RuntimeError("printer shell did not come up")
                time.sleep(0.01)
            # The mock prints at once; the shell's wait for a physical print before asking the
            # status again (1 s) is not software time, and would only space the people out.
            driver.kiosk.supervisors["printer"].device._settle_s = 0.01
            driver.sign_in()
            parts = _time_parts(driver.kiosk.store)
            split: dict[str, list[float]] = {name: [] for name in parts}
            crowd = UniquePeople(seed=11)
            steps = []
            driver.kiosk.runtime.observers.append(lambda event, effects: steps.append(
                sum(isinstance(e, PrintLabel) for e in effects)))
            times = {"card": [], "qr": []}
            printed = 0
            for i in range(people + 1):  # the first person opens the first tube too: not timed
                via = "card" if i % 2 == 0 else "qr"
                person = crowd.next()
                # prepared outside the clock: the bytes / text the device delivers
                data = card_frame(person.id_card()) if via == "card" else driver.table.code_for(person)
                steps.clear()
                t0 = time.perf_counter()
                event = decode_card(data) if via == "card" else CodeScanned(data, "scanner")
                driver.kiosk.runtime.post(event)
                labels = printer.wait_for(printed + 1, timeout=10)  # the step's first label
                t1 = time.perf_counter()
                if len(labels) <= printed:
                    raise RuntimeError(f"no label for person {i}")
                if i:
                    times[via].append((t1 - t0) * 1000)
                    for name, calls in parts.items():
                        split[name].append(sum(ms for at, ms in calls if t0 <= at <= t1))
                while not steps:  # then let the step's other labels (box, manifest) print too
                    time.sleep(0.001)
                printed += steps[0]
                printer.wait_for(printed, timeout=10)
                while driver.kiosk.runtime.labels_waiting():
                    time.sleep(0.001)
            records = sum(1 for r in driver.kiosk.store.iter_records() if r.get("kind") == "sample")
        finally:
            driver.stop()
    both = times["card"] + times["qr"]
    if records != people + 1:
        raise RuntimeError(f"{records} sample records stored for {people} people")
    return {
        "people": people,
        "p50_ms": round(percentile(both, 50), 2),
        "p99_ms": round(percentile(both, 99), 2),
        "max_ms": round(max(both), 2),
        "card_p50_ms": round(percentile(times["card"], 50), 2),
        "card_p99_ms": round(percentile(times["card"], 99), 2),
        "qr_p50_ms": round(percentile(times["qr"], 50), 2),
        "qr_p99_ms": round(percentile(times["qr"], 99), 2),
        # where the time goes: the step's one durable write (records + label queue together);
        # label_queue_save is a separate set_meta, which should no longer be on this path
        **{f"{name}_p50_ms": round(percentile(v, 50), 2) for name, v in split.items() if v},
        **{f"{name}_p99_ms": round(percentile(v, 99), 2) for name, v in split.items() if v},
    }


def _time_parts(store) -> dict[str, list[tuple[float, float]]]:
    """Time the store's durable writes: append (records and label queue in one commit) and
    set_meta (the printer marking a label printed; off the scan path since they were merged)."""
    parts: dict[str, list[tuple[float, float]]] = {"store_append": [], "label_queue_save": []}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                parts[name].append((t0, (time.perf_counter() - t0) * 1000))
        return wrapper

    store.append = timed("store_append", store.append)
    store.set_meta = timed("label_queue_save", store.set_meta)
    return parts


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 400), indent=1))
