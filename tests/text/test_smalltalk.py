import pytest

from kefu.text.smalltalk import small_talk


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("在吗", "greeting"),
        ("亲 在不在", "greeting"),
        ("在？？", "greeting"),
        ("您好 在吗", "greeting"),
        ("亲~~", "greeting"),
        ("Hi there", "greeting"),
        ("hello", "greeting"),
        ("谢谢", "thanks"),
        ("好的谢谢", "thanks"),
        ("谢谢亲，辛苦了", "thanks"),
        ("thanks!", "thanks"),
        ("拜拜", "bye"),
        ("谢谢 拜拜", "bye"),
        ("没事了 谢谢", "bye"),
        ("好的", "ack"),
        ("嗯嗯", "ack"),
        ("OK", "ack"),
        ("你是机器人吗", "robot"),
        ("你是真人吗？", "robot"),
        ("是人工吗", "robot"),
        ("是机器人吧", "robot"),
        ("are you a bot?", "robot"),
        ("Are you a robot", "robot"),
        ("你好笨", "frustration"),
        ("答非所问", "frustration"),
    ],
)
def test_small_talk_kinds(text: str, kind: str) -> None:
    assert small_talk(text) == kind


@pytest.mark.parametrize(
    "text",
    [
        "人工",  # asks for a person: the human flow's job
        "人工客服",
        "转人工",
        "机器人听不懂 叫人工",
        "你好，我想退货",  # a greeting that opens a request
        "在吗？我的快递到哪了",
        "hi, where is my order",
        "可以退货吗",
        "12ab",
        "DD20261105002",
        "好的，地址改成杭州市西湖区文三路100号",
        "",
        "谢谢" * 30,  # too long to be only small talk
    ],
)
def test_not_small_talk(text: str) -> None:
    assert small_talk(text) is None
