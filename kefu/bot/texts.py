"""Texts the bot says on its own (``<bot>/texts.yaml`` overrides them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CannedTexts:
    """Texts the bot says on its own (the bot directory can override them)."""

    suggest_intro: str = "您是不是想问：\n"
    apology: str = (
        "抱歉，我暂时无法回答这个问题。您可以换个说法再问一次，或者回复“转人工”联系人工客服。"
        "\n(Sorry, I can't answer that right now. Try rephrasing, or ask for a human agent.)"
    )
