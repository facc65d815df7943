import pytest

from kefu.obs.logging import configure_logging, get_logger, mask_pii


@pytest.mark.parametrize(
    "text",
    [
        "我的手机号是13800138000",
        "call +86 138 0013 8000 please",
        "电话 138-0013-8000",
        "身份证 11010519491231002X 谢谢",
        "id 440524188001010014",
        "卡号 6222021234567890123",
        "mail me: zhang.san@example.com",
    ],
)
def test_mask_pii_hides_personal_numbers(text: str) -> None:
    masked = mask_pii(text)
    digits = "".join(ch for ch in masked if ch.isdigit())
    assert len(digits) < 6, masked
    assert "@example.com" not in masked


def test_mask_pii_keeps_ordinary_text() -> None:
    assert mask_pii("订单 A123 的尾号 5678，共 3 件") == "订单 A123 的尾号 5678，共 3 件"


def test_logger_never_writes_phone_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    get_logger("t").info("user_said", text="我的手机 13912345678", nested={"id": "11010519491231002X"})
    err = capsys.readouterr().err
    assert "13912345678" not in err and "11010519491231002X" not in err
    assert "[PHONE]" in err and "[ID]" in err
