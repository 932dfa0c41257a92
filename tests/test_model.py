from firmware_app.model import IdCard, mask_id, mask_name, record_id


def test_mask_keeps_first_six_and_last_four():
    assert mask_id("11010519491231002X") == "110105********002X"


def test_mask_name():
    assert mask_name("张三丰") == "张*丰"
    assert mask_name("张三") == "张*"


def test_idcard_repr_never_shows_full_number():
    card = IdCard("张三", "1", "01", "19491231", "北京市", "11010519491231002X", "公安局", "20100101", "长期")
    assert "11010519491231002X" not in repr(card)
    assert "11010519491231002X" not in str(card)


def test_record_ids_sort_in_sequence_order():
    ids = [record_id("dev", n) for n in (9, 10, 100, 2)]
    assert sorted(ids) == [record_id("dev", n) for n in (2, 9, 10, 100)]
