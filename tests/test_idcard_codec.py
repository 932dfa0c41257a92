"""The SAM codec without I/O: frames, resync, status reasons, the text block."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import idcard
from drivers.idcard import NEED_DATA, FrameError, Response, ResponseDecoder
from hw_mocks.idcard_reader import (AYI_GULI, LI_SI, ZHANG_SAN, check_char, fake_photo, foreign_text_block,
                                    frame, text_block)


def events(decoder: ResponseDecoder) -> list:
    out = []
    while (ev := decoder.next_event()) is not NEED_DATA:
        out.append(ev)
    return out


def drain(decoder: ResponseDecoder) -> list:
    """Everything decodable, giving up on incomplete frames as a timed-out shell does."""
    out = events(decoder)
    while (lost := decoder.give_up()) is not None:
        out += [lost] + events(decoder)
    return out


def read_answer(card=ZHANG_SAN, lengths=2) -> bytes:
    lens = [256, 1024] + [0] * (lengths - 2)
    return b"".join(n.to_bytes(2, "big") for n in lens) + text_block(card) + fake_photo("p")


# -- commands --------------------------------------------------------------


def test_commands_match_the_published_bytes():
    assert idcard.encode_command(*idcard.FIND_CARD) == bytes.fromhex("AAAAAA96690003200122")
    assert idcard.encode_command(*idcard.SELECT_CARD) == bytes.fromhex("AAAAAA96690003200221")
    assert idcard.encode_command(*idcard.SAM_STATUS) == bytes.fromhex("AAAAAA9669000311FFED")
    assert idcard.encode_command(*idcard.READ_BASE) == bytes.fromhex("AAAAAA96690003300132")
    assert idcard.encode_command(*idcard.SET_MAX_RF_FRAME, b"\x50") == bytes.fromhex("AAAAAA9669000461FF50CA")


def test_command_bytes_are_checked():
    with pytest.raises(ValueError):
        idcard.encode_command(0x100, 0)


# -- responses -------------------------------------------------------------


def test_published_error_example_decodes_to_read_failed():
    d = ResponseDecoder()
    d.receive_data(bytes.fromhex("AAAAAA9669000400004145"))
    (ev,) = events(d)
    assert ev == Response(0, 0, 0x41, b"")
    assert not ev.is_(idcard.SW_OK)
    assert "读卡失败" in ev.reason[0] and "read failed" in ev.reason[1]


def test_find_answer_with_card_iin():
    d = ResponseDecoder()
    d.receive_data(bytes.fromhex("AAAAAA9669000800009F0000000097"))
    (ev,) = events(d)
    assert ev.is_(idcard.SW_CARD_FOUND) and ev.data == b"\0\0\0\0"


def test_unknown_status_is_reported_as_unknown_never_success():
    d = ResponseDecoder()
    d.receive_data(frame(0x77))
    (ev,) = events(d)
    assert not ev.is_(idcard.SW_OK)
    assert "0x77" in ev.reason[0] and "unknown" in ev.reason[1]


def test_card_status_in_sw1_sw2_is_not_success():
    d = ResponseDecoder()
    d.receive_data(frame(0x90, sw1=0x6A, sw2=0x82))
    (ev,) = events(d)
    assert not ev.is_(idcard.SW_OK)
    assert "6A82" in ev.reason[1]


def test_garbage_before_a_frame_is_reported_then_the_frame_decodes():
    d = ResponseDecoder()
    d.receive_data(b"\x00\x13garbage\xaa" + frame(0x90))
    evs = events(d)
    assert [type(e) for e in evs] == [FrameError, Response]
    assert evs[0].kind == "garbage" and evs[1].sw3 == 0x90


def test_bad_checksum_is_reported_and_decoding_carries_on():
    d = ResponseDecoder()
    d.receive_data(frame(0x90, read_answer(), bad_checksum=True) + frame(0x80))
    evs = events(d)
    assert isinstance(evs[0], FrameError) and evs[0].kind == "checksum"
    assert "校验" in evs[0].reason and "checksum" in evs[0].reason_en
    assert evs[-1] == Response(0, 0, 0x80, b"")
    assert sum(isinstance(e, Response) for e in evs) == 1


def test_length_out_of_range_is_reported_and_resynchronised():
    d = ResponseDecoder()
    d.receive_data(idcard.PREAMBLE + b"\xff\xff" + frame(0x9F, b"\0" * 4))
    evs = events(d)
    assert evs[0].kind == "length"
    assert evs[-1].sw3 == 0x9F


def test_false_preamble_swallowing_a_frame_is_recovered_on_give_up():
    d = ResponseDecoder()
    d.receive_data(idcard.PREAMBLE + b"\x01\x00" + frame(0x90))  # claims 256 bytes, never gets them
    assert events(d) == []
    evs = drain(d)
    assert evs[0].kind == "truncated"
    assert evs[-1] == Response(0, 0, 0x90, b"")


def test_preamble_split_across_chunks():
    d = ResponseDecoder()
    data = b"\x01\x02" + frame(0x90, read_answer())
    for i in range(len(data)):
        d.receive_data(data[i : i + 1])
    evs = [e for e in events(d) if isinstance(e, Response)]
    assert len(evs) == 1 and len(evs[0].data) == 4 + 256 + 1024


def test_response_repr_never_shows_card_data():
    r = Response(0, 0, 0x90, read_answer())
    assert "张" not in repr(r) and "4419" not in repr(r)


# -- read base info -> IdCard ----------------------------------------------


@pytest.mark.parametrize("card", [ZHANG_SAN, LI_SI, AYI_GULI])
@pytest.mark.parametrize("lengths", [2, 3])
def test_text_block_decodes_to_the_card(card, lengths):
    got = idcard.decode_base_info(read_answer(card, lengths))
    assert got == card
    assert got.photo == fake_photo("p")  # kept as opaque bytes
    assert "photo" not in repr(got) and card.id_number not in repr(got)


def test_long_term_validity_and_nation_code():
    got = idcard.decode_base_info(read_answer(LI_SI))
    assert got.valid_to == "长期" and got.nation == "01" and got.gender == "2"
    assert got.id_number == "11010519491231002X"


def test_lowercase_x_is_normalised():
    block = text_block(replace(LI_SI, id_number="11010519491231002x"))
    assert idcard.decode_text(block).id_number == "11010519491231002X"


def test_foreign_permanent_resident_card_is_unsupported_not_misread():
    with pytest.raises(idcard.UnsupportedCard) as exc:
        idcard.decode_text(foreign_text_block())
    assert "外国人永久居留" in exc.value.reason and "foreign" in exc.value.reason_en


def test_unknown_card_type_flag_is_unsupported():
    with pytest.raises(idcard.UnsupportedCard):
        idcard.decode_text(text_block(ZHANG_SAN, card_type="Y"))


def test_hk_macao_taiwan_permit_shares_the_layout():
    permit = replace(ZHANG_SAN, nation="", birth="19950615", id_number="81000019950615001" + check_char("81000019950615001"))
    assert idcard.decode_text(text_block(permit, card_type="J")) == permit


def test_wrong_check_character_is_refused():
    block = text_block(replace(LI_SI, id_number="110105194912310021"))
    with pytest.raises(idcard.CardDataError) as exc:
        idcard.decode_text(block)
    assert "id_number" in exc.value.reason_en


@pytest.mark.parametrize("data", [b"", b"\x01\x00\x04\x00", read_answer()[:-1], read_answer() + b"\0"])
def test_wrong_lengths_are_refused(data):
    with pytest.raises(idcard.CardDataError):
        idcard.decode_base_info(data)


def test_undecodable_text_is_refused():
    block = bytearray(text_block(ZHANG_SAN))
    block[0:2] = b"\x00\xd8"  # a lone UTF-16 surrogate
    with pytest.raises(idcard.CardDataError):
        idcard.decode_text(bytes(block))


# -- fuzzing ---------------------------------------------------------------

VALID_FRAMES = [frame(0x90), frame(0x80), frame(0x9F, b"\0" * 4), frame(0x90, bytes(range(8))),
                frame(0x41), frame(0x90, read_answer())]
no_preamble = st.binary(max_size=300).filter(lambda b: idcard.PREAMBLE not in b)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)])]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.lists(st.integers(0, 5000), max_size=20))
def test_random_bytes_only_give_typed_events(data, cuts):
    d = ResponseDecoder()
    for chunk in chunked(data, cuts):
        d.receive_data(chunk)
        for ev in events(d):
            assert isinstance(ev, (Response, FrameError))
    for ev in drain(d):
        assert isinstance(ev, (Response, FrameError))
    assert d.pending == 0


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(no_preamble, st.sampled_from(VALID_FRAMES)), min_size=1, max_size=6),
       st.lists(st.integers(0, 20000), max_size=30))
def test_valid_frames_decode_whatever_the_chunking_and_garbage(parts, cuts):
    stream = b"".join(g + f for g, f in parts)
    d = ResponseDecoder()
    got = []
    for chunk in chunked(stream, cuts):
        d.receive_data(chunk)
        got += events(d)
    got += drain(d)
    want = []
    for _, f in parts:
        e = ResponseDecoder()
        e.receive_data(f)
        want += events(e)
    assert [e for e in got if isinstance(e, Response)] == want


@settings(max_examples=300)
@given(st.sampled_from(VALID_FRAMES), st.data())
def test_mutated_frames_never_crash_and_never_pass_as_the_original(f, data):
    i = data.draw(st.integers(5, len(f) - 1))  # keep the preamble: exercise LEN, body and checksum
    flip = data.draw(st.integers(1, 255))
    mutated = bytearray(f)
    mutated[i] ^= flip
    d = ResponseDecoder()
    d.receive_data(bytes(mutated) + frame(0x90))
    evs = drain(d)
    assert all(isinstance(e, (Response, FrameError)) for e in evs)
    assert any(isinstance(e, FrameError) for e in evs)  # a single flipped byte never goes unnoticed
    assert evs[-1] == Response(0, 0, 0x90, b"")  # and the next frame still decodes


@settings(max_examples=200)
@given(st.binary(min_size=256, max_size=256))
def test_random_text_blocks_give_a_card_or_a_typed_error(block):
    try:
        card = idcard.decode_text(block)
    except idcard.IdCardError:
        return
    assert len(card.id_number) == 18


def test_every_corruption_of_the_length_field_is_caught():
    """Exhaustive over LEN: a body or checksum flip always changes the XOR, a
    LEN flip changes where the frame ends, so it is the one worth checking all of."""
    for f in VALID_FRAMES:
        for i in (5, 6):
            for flip in range(1, 256):
                mutated = bytearray(f)
                mutated[i] ^= flip
                d = ResponseDecoder()
                d.receive_data(bytes(mutated) + frame(0x90))
                evs = drain(d)
                assert any(isinstance(e, FrameError) for e in evs), (f.hex(), i, flip)
                assert evs[-1] == Response(0, 0, 0x90, b"")


def test_read_with_fingerprint_has_three_lengths():
    fp = bytes(range(256)) * 4
    data = b"".join(n.to_bytes(2, "big") for n in (256, 1024, 1024)) + text_block(LI_SI) + fake_photo("p") + fp
    text, photo, fingerprint = idcard.split_base_info(data)
    assert fingerprint == fp and photo == fake_photo("p")
    assert idcard.decode_base_info(data) == LI_SI
    d = ResponseDecoder()
    d.receive_data(frame(0x90, data))
    (ev,) = events(d)
    assert len(frame(0x90, data)) == 2321  # LEN 09 0A, as public readers document for 30 10


def test_digits_of_other_scripts_are_refused():
    block = text_block(replace(ZHANG_SAN, birth="١٩٩٠٠٣٠٧"))  # Arabic-Indic digits
    with pytest.raises(idcard.CardDataError):
        idcard.decode_text(block)
    with pytest.raises(idcard.CardDataError):
        idcard.decode_text(text_block(replace(ZHANG_SAN, nation="0¹")))


def test_the_checksum_is_the_xor_of_every_byte_at_every_length():
    rng = random.Random(18)
    for n in range(1400):
        body = bytes(rng.randrange(256) for _ in range(n))
        expected = 0
        for b in body:
            expected ^= b
        assert idcard.checksum(body) == expected, n
    assert idcard.checksum(bytearray(b"\x00\x05\x00\x00\x90\xff")) == 0x05 ^ 0x90 ^ 0xFF
