"""Texts the bot says on its own, one version per language (``<bot>/texts.yaml`` overrides them).

A text is said in the shopper's language, or in the bot's default language when it has no version in that one —
never two languages glued into one message.
"""

from __future__ import annotations

from collections.abc import Mapping

from kefu.flows.texts import LANGS, Lang

DEFAULTS: dict[str, dict[Lang, str]] = {
    "suggest_intro": {"zh": "您是不是想问：\n", "en": "Did you mean:\n"},
    "apology": {
        "zh": "抱歉，我暂时无法回答这个问题。您可以换个说法再问一次，或者回复“转人工”联系人工客服。",
        "en": 'Sorry, I can\'t answer that right now. Try rephrasing it, or say "talk to a human" to reach a person.',
    },
    "smalltalk_greeting": {
        "zh": "在的，您好！请问有什么可以帮您？",
        "en": "Hi! I'm here — how can I help you?",
    },
    "smalltalk_thanks": {
        "zh": "不客气！还有其他问题随时找我。",
        "en": "You're welcome! Ask me anytime if there's anything else.",
    },
    "smalltalk_bye": {
        "zh": "再见，祝您购物愉快！",
        "en": "Goodbye, and happy shopping!",
    },
    "smalltalk_ack": {
        "zh": "好的，还有其他问题随时找我。",
        "en": "OK — ask me anytime if there's anything else.",
    },
    "smalltalk_robot": {
        "zh": "我是智能客服助手，可以解答常见问题、帮您办理常见业务。需要真人客服可以回复“转人工”。",
        "en": (
            "I'm the shop's virtual assistant: I can answer common questions and help with everyday requests. "
            'For a person, say "talk to a human".'
        ),
    },
}
KEYS: tuple[str, ...] = tuple(DEFAULTS)


class CannedTexts:
    """Texts the bot says on its own, per language (the bot directory can override them).

    ``CannedTexts(apology="…")`` sets a text in the default language only; ``CannedTexts(apology={"en": "…"})``
    sets the languages given. Languages a bot does not override keep the built-in text.
    """

    __slots__ = ("_texts", "default_lang")

    def __init__(self, *, default_lang: Lang = "zh", **texts: str | Mapping[Lang, str]) -> None:
        unknown = set(texts) - set(KEYS)
        if unknown:
            raise TypeError(f"unknown canned text(s): {', '.join(sorted(unknown))}")
        self.default_lang: Lang = default_lang
        merged: dict[str, dict[Lang, str]] = {key: dict(value) for key, value in DEFAULTS.items()}
        for key, value in texts.items():
            if isinstance(value, str):
                # One text for the bot's own language: its built-in versions in other languages stay.
                merged[key][default_lang] = value
            else:
                merged[key].update({lang: text for lang, text in value.items() if lang in LANGS and text})
        self._texts = merged

    def text(self, key: str, lang: Lang | None = None) -> str:
        """The text ``key`` in ``lang``, else in the bot's default language."""
        versions = self._texts[key]
        return (
            versions.get(lang or self.default_lang) or versions.get(self.default_lang) or next(iter(versions.values()))
        )

    def variants(self, key: str) -> tuple[str, ...]:
        """Every language version of ``key`` (to recognise the bot's own words in a transcript)."""
        return tuple(dict.fromkeys(self._texts[key].values()))

    @property
    def apology(self) -> str:
        """The apology in the bot's default language."""
        return self.text("apology")

    @property
    def suggest_intro(self) -> str:
        """The suggestions' intro in the bot's default language."""
        return self.text("suggest_intro")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CannedTexts):
            return NotImplemented
        return (self._texts, self.default_lang) == (other._texts, other.default_lang)

    def __hash__(self) -> int:
        return hash((self.default_lang, tuple((k, tuple(sorted(v.items()))) for k, v in sorted(self._texts.items()))))

    def __repr__(self) -> str:
        return f"CannedTexts(default_lang={self.default_lang!r}, keys={len(self._texts)})"
