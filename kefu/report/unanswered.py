"""Which shopper messages the bot did not answer, found in transcripts (pure: no I/O).

A shopper message is *unanswered* when, in its conversation:

* ``apology`` — the bot's answer to it was the apology (a ``fallback`` answer that starts like the bot's
  ``apology`` text);
* ``suggestion_not_taken`` — the bot answered "您是不是想问…" with suggestions (a ``fallback`` answer that starts
  with ``suggest_intro``) and the shopper's next message is none of them (or there is no next message);
* ``handoff`` — a person was asked for because of it: the model (``request_human``) or too many failures in a
  row handed over on this very message; or the shopper asked for a person (words, button, frustration) right
  after it (then the question is the shopper's last message *before* the request; a request with nothing before
  it teaches nothing). Handoffs a flow makes by design (``flow``) are not counted.

Messages relayed to a person (``source: human``) are never the bot's to answer and are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kefu.bot.texts import CannedTexts
from kefu.report.query import HandoffFact, Msg
from kefu.text.normalize import normalize

APOLOGY_PREFIX_CHARS = 16  # as kefu.engine.people counts apologies in a row
HANDED_ON_THIS = frozenset({"model", "repeated_failure"})  # the handoff turn's own message is the question
ASKED_AFTER = frozenset({"shopper_asked", "button", "frustration"})  # the question came before the request
MIN_CHARS = 2  # a message shorter than this (normalised) is no question worth grouping
_ORDINALS = {"1": 0, "2": 1, "3": 2, "一": 0, "二": 1, "三": 2, "第一个": 0, "第二个": 1, "第三个": 2}


@dataclass(slots=True)
class Unanswered:
    """One shopper message the bot did not answer, and why it counts."""

    text: str
    session_id: str
    turn_id: str
    reasons: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class FallbackKinds:
    """How ``fallback`` answers split: the apology, suggestions, or a knowledge-base answer without the model."""

    apology: int = 0
    suggestions: int = 0
    kb: int = 0


class Classifier:
    """Tells the bot's own fallback texts apart (the bot's current texts and the built-in defaults)."""

    def __init__(self, texts: CannedTexts | None = None) -> None:
        both = [texts or CannedTexts(), CannedTexts()]
        self._apologies = tuple({a[:APOLOGY_PREFIX_CHARS] for t in both for a in t.variants("apology") if a})
        self._intros = tuple({i.strip() for t in both for i in t.variants("suggest_intro") if i.strip()})

    def kind(self, answer: Msg) -> str | None:
        """``apology`` | ``suggestions`` | ``kb`` for a fallback answer, None for any other answer."""
        if answer.source != "fallback":
            return None
        if answer.content.startswith(self._apologies):
            return "apology"
        if answer.content.lstrip().startswith(self._intros):
            return "suggestions"
        return "kb"

    @staticmethod
    def suggested(answer: Msg) -> list[str]:
        """The questions a suggestions answer offered (its ``- question`` lines)."""
        return [line[2:].strip() for line in answer.content.splitlines() if line.startswith("- ") and line[2:].strip()]


def _key(text: str) -> str:
    return normalize(text).replace(" ", "")


def picked(reply: str, suggestions: Sequence[str]) -> bool:
    """Whether the shopper's ``reply`` takes one of ``suggestions``: the same words (either containing the other)
    or its number (1–3, 第一个 …)."""
    key = _key(reply)
    if not key:
        return False
    if key in _ORDINALS:
        return _ORDINALS[key] < len(suggestions)
    return any(key == s or (len(key) >= 4 and (key in s or s in key)) for s in map(_key, suggestions) if s)


def find_unanswered(
    transcript: Sequence[Msg], handoffs: Iterable[HandoffFact], classifier: Classifier
) -> list[Unanswered]:
    """The unanswered shopper messages of one conversation (oldest first), each once with all its reasons."""
    answers: dict[str, Msg] = {}
    for msg in transcript:
        if msg.role == "assistant":
            answers.setdefault(msg.turn_id, msg)
    users = [m for m in transcript if m.role == "user"]
    found: dict[int, Unanswered] = {}

    def add(msg: Msg, reason: str) -> None:
        if len(_key(msg.content)) < MIN_CHARS:
            return
        found.setdefault(msg.id, Unanswered(msg.content.strip(), msg.session_id, msg.turn_id)).reasons.add(reason)

    for i, user in enumerate(users):
        answer = answers.get(user.turn_id)
        if answer is None:
            continue
        kind = classifier.kind(answer)
        if kind == "apology":
            add(user, "apology")
        elif kind == "suggestions":
            reply = users[i + 1] if i + 1 < len(users) else None
            if reply is None or not picked(reply.content, classifier.suggested(answer)):
                add(user, "suggestion_not_taken")

    requested = {h.turn_id for h in handoffs}
    for handoff in handoffs:
        if handoff.reason_code in HANDED_ON_THIS:
            own = next((u for u in users if u.turn_id == handoff.turn_id), None)
            if own is not None:
                add(own, "handoff")
        elif handoff.reason_code in ASKED_AFTER:
            before = _before(users, answers, handoff, requested)
            if before is not None:
                add(before, "handoff")
            elif handoff.reason_code == "frustration":
                own = next((u for u in users if u.turn_id == handoff.turn_id), None)
                if own is not None:
                    add(own, "handoff")  # 我要投诉，快递一直不到: the complaint is the question
    return [found[k] for k in sorted(found)]


def _before(users: Sequence[Msg], answers: Mapping[str, Msg], handoff: HandoffFact, requested: set[str]) -> Msg | None:
    """The shopper's last message before ``handoff`` that the bot answered, that asked for nobody and that says
    something."""
    index = next((i for i, u in enumerate(users) if u.turn_id == handoff.turn_id), None)
    if index is None:  # the button: no turn of its own, so go by time
        index = sum(1 for u in users if u.created_at <= handoff.created_at)
    for user in reversed(users[:index]):
        answer = answers.get(user.turn_id)
        if user.turn_id in requested or (answer is not None and answer.source == "human"):
            continue
        if len(_key(user.content)) < MIN_CHARS:
            continue
        return user
    return None


def fallback_kinds(transcripts: Iterable[Sequence[Msg]], classifier: Classifier) -> FallbackKinds:
    """Fallback answers in ``transcripts`` by kind."""
    counts = {"apology": 0, "suggestions": 0, "kb": 0}
    for transcript in transcripts:
        for msg in transcript:
            kind = classifier.kind(msg) if msg.role == "assistant" else None
            if kind is not None:
                counts[kind] += 1
    return FallbackKinds(**counts)
