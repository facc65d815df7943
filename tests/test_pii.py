import pytest

from kefu.pii import (
    LOG_LABELS,
    TYPE_LABELS,
    Pseudonyms,
    StreamRestorer,
    find_pii,
    luhn,
    mask_pii,
    valid_id_card,
)

ID = "11010519491231002X"  # a valid check character (GB 11643 example)
CARD = "6222021234567890128"  # passes Luhn


def test_check_digits() -> None:
    assert valid_id_card(ID)
    assert not valid_id_card("110105194912310021")
    assert luhn(CARD) and not luhn("6222021234567890123")


@pytest.mark.parametrize(
    "text",
    [
        "我的手机号是13800138000",
        "电话 138 0013 8000",
        "电话138-0013-8000谢谢",
        "138.0013.8000",
        "+86 13800138000",
        "８６ １３８００１３８０００",  # full-width, as a Chinese IME types them
        "手机：１３８００１３８０００",
        "1 3 8 0 0 1 3 8 0 0 0",
    ],
)
def test_phones_in_every_form(text: str) -> None:
    found = find_pii(text)
    assert [m.kind for m in found] == ["phone"], found
    assert found[0].canonical == "13800138000"
    assert text[found[0].start : found[0].end] == found[0].text


@pytest.mark.parametrize(
    "text",
    [
        "订单号 DD20241101001 到哪了",
        "尾号 5678",
        "A13800138000B",
        "运单 SF1234567890123",
        "订单 202411010012345678",  # 18 digits, not a valid ID check character, no Luhn
        "价格 1380 元，共 3 件",
    ],
)
def test_order_numbers_and_ordinary_text_are_not_personal(text: str) -> None:
    assert find_pii(text) == []


def test_ids_cards_and_emails() -> None:
    text = f"身份证{ID}，卡号 6222 0212 3456 7890 128，邮箱 Zhang.San@Example.com"
    kinds = [m.kind for m in find_pii(text)]
    assert kinds == ["id_card", "bank_card", "email"]
    assert mask_pii(text, TYPE_LABELS) == "身份证[身份证号]，卡号 [银行卡号]，邮箱 [邮箱]"


def test_email_right_after_chinese_text() -> None:
    assert mask_pii("联系zhang@example.com谢谢", TYPE_LABELS) == "联系[邮箱]谢谢"


def test_the_log_masker_is_looser_than_the_placeholders() -> None:
    bad_check = "110105194912310021"
    assert find_pii(bad_check) == []
    assert mask_pii(bad_check, LOG_LABELS, strict=False) == "[ID]"
    assert mask_pii("卡 6222021234567890123", LOG_LABELS, strict=False) == "卡 [CARD]"


def test_pseudonyms_are_stable_and_reversible() -> None:
    names = Pseudonyms()
    first = names.mask("我的电话 138 0013 8000，备用 13900139000")
    again = names.mask("还是13800138000")
    assert first == "我的电话 [手机号1]，备用 [手机号2]"
    assert again == "还是[手机号1]"
    assert names.restore("好的，已记下 [手机号1] 和【手机号 2】") == "好的，已记下 138 0013 8000 和13900139000"
    assert names.restore("[手机号9] 不是我们给的") == "[手机号9] 不是我们给的"


def test_pseudonyms_off_for_unlisted_kinds() -> None:
    names = Pseudonyms(kinds=("email",))
    assert names.mask("13800138000 a@b.cn") == "13800138000 [邮箱1]"
    assert Pseudonyms(kinds=()).mask("13800138000") == "13800138000"


@pytest.mark.parametrize("cut", range(1, 12))
def test_stream_restorer_handles_placeholders_split_across_pieces(cut: int) -> None:
    names = Pseudonyms()
    names.mask("13800138000")
    answer = "已为手机[手机号1]的用户查询。[注意] 谢谢"
    restorer = StreamRestorer(names)
    pieces = [answer[i : i + cut] for i in range(0, len(answer), cut)]
    out = "".join(restorer.feed(p) for p in pieces) + restorer.flush()
    assert out == "已为手机13800138000的用户查询。[注意] 谢谢"


def test_stream_restorer_does_not_hold_ordinary_brackets_for_long() -> None:
    names = Pseudonyms()
    names.mask("13800138000")
    restorer = StreamRestorer(names)
    assert restorer.feed("参考[1]") == "参考[1]"
    assert restorer.feed("见 [") == "见 "
    assert restorer.feed("这是一段很长的不是占位符的文字") == "[这是一段很长的不是占位符的文字"
