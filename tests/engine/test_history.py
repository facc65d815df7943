from kefu.engine.history import build_messages, estimate_tokens
from kefu.store.base import ContextMessage


def _history(n: int) -> list[ContextMessage]:
    out = []
    for i in range(n):
        out.append(ContextMessage("user", f"问题{i} " + "字" * 30))
        out.append(ContextMessage("assistant", f"回答{i} " + "字" * 30))
    return out


def test_estimate_tokens_counts_cjk_heavier_than_ascii() -> None:
    assert estimate_tokens("字" * 30) > estimate_tokens("a" * 30)


def test_build_messages_keeps_system_first_and_user_last() -> None:
    messages = build_messages("SYS", _history(2), "新问题", token_budget=10_000)
    assert messages[0].role == "system" and messages[0].content == "SYS"
    assert messages[-1].role == "user" and messages[-1].content == "新问题"
    assert len(messages) == 6


def test_build_messages_cuts_oldest_to_fit_budget() -> None:
    history = _history(20)
    messages = build_messages("SYS", history, "新问题", token_budget=200)
    kept = messages[1:-1]
    assert 0 < len(kept) < len(history)
    # the newest history survives, the oldest is dropped
    assert kept[-1].content == history[-1].content
    assert all(m.content != history[0].content for m in kept)
    assert sum(estimate_tokens(m.content) for m in messages) <= 200


def test_build_messages_never_starts_history_with_assistant() -> None:
    history = [ContextMessage("assistant", "孤立的回答"), *_history(1)]
    messages = build_messages("", history, "q", token_budget=10_000)
    assert messages[0].role == "user"
    assert "孤立的回答" not in [m.content for m in messages]


def test_build_messages_sends_question_even_when_over_budget() -> None:
    messages = build_messages("SYS", _history(3), "长" * 500, token_budget=10)
    assert [m.role for m in messages] == ["system", "user"]


def test_interrupted_answers_are_replayed_as_cut_off() -> None:
    from kefu.engine.history import CUT_OFF, assistant_context

    assert assistant_context("部分", "interrupted").content == "部分" + CUT_OFF
    assert assistant_context("完整", "complete").content == "完整"
