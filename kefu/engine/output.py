"""The model's text on its way to the shopper: placeholders restored, then held back just long enough to be checked.

The model writes ``[手机号1]`` where the shopper wrote their number (:class:`kefu.pii.Pseudonyms`); the shopper must
see their own number again, so placeholders are restored as the text streams (a placeholder split across chunks
is held until it is whole). Then content moderation: nothing the lexicon flags may ever reach the browser, so an
ending that may be the beginning of a term ("傻", "加微") stays back until the text after it shows whether it is.
Only such an ending is held — at most the longest term, with evasion characters up to twice that — so ordinary
text streams with no delay at all, and a held ending is late by a few characters, never a whole answer.
"""

from __future__ import annotations

from kefu.engine.writer import DeltaWriter
from kefu.moderation import Moderator, Verdict
from kefu.pii import Pseudonyms, StreamRestorer


def starred(text: str, verdict: Verdict) -> str:
    """``text`` with every blocked or masked term replaced by stars (flagged terms stay: they are for review)."""
    chars = list(text)
    for hit in verdict.hits:
        if hit.action in ("block", "mask"):
            chars[hit.start : hit.end] = ["*" if ch.isalnum() else ch for ch in text[hit.start : hit.end]]
    return "".join(chars)


class ModelOutput:
    """A write-only sink in front of the turn's :class:`DeltaWriter` for text that came from the model."""

    def __init__(self, writer: DeltaWriter, pseudonyms: Pseudonyms | None, moderator: Moderator | None) -> None:
        self._writer = writer
        self._restorer = StreamRestorer(pseudonyms) if pseudonyms is not None and pseudonyms.active else None
        self._moderator = moderator if moderator is not None and not moderator.empty else None
        self._held = ""
        self.blocked: Verdict | None = None  # a blocking term was found: nothing more is shown
        self.verdicts: list[Verdict] = []  # every verdict that was not "allow" (for marks and metrics)
        self.text_parts: list[str] = []  # what went through (restored), shown or held

    def write(self, piece: str) -> None:
        """Accept a piece of the model's text."""
        if self.blocked is not None or not piece:
            return
        text = self._restorer.feed(piece) if self._restorer is not None else piece
        if text:
            self._screen(text, final=False)

    def close(self) -> None:
        """The model finished: release what is still held (after a last check)."""
        if self.blocked is not None:
            return
        rest = self._restorer.flush() if self._restorer is not None else ""
        self._screen(rest, final=True)

    @property
    def shown(self) -> bool:
        """Whether any of the model's text reached the turn log (the shopper may have seen it)."""
        return bool(self._writer.text_parts)

    def _screen(self, text: str, *, final: bool) -> None:
        self.text_parts.append(text)
        moderator = self._moderator
        if moderator is None:
            if text:
                self._writer.write(text)
            return
        held = self._held + text
        # Only text with a character of some term can hit: most chunks skip the check with a lookup per character.
        suspect = moderator.may_hit(held)
        verdict = moderator.check(held, where="output", partial=not final) if suspect else None
        if verdict is not None and verdict.action != "allow":
            self._remember(verdict)
            if verdict.action == "block":
                self.blocked = verdict
                self._held = ""
                return
            held = verdict.text  # masked terms are starred, same length
        # Hold back only an ending that may still grow into a term ("傻", "傻 "); everything else goes out now.
        cut = len(held) if final or not suspect else moderator.pending(held)
        if cut:
            self._writer.write(held[:cut])
        self._held = held[cut:]

    def _remember(self, verdict: Verdict) -> None:
        # The held tail is checked again with each piece: count a term once, not once per piece.
        seen = {(v.action, v.categories) for v in self.verdicts}
        if (verdict.action, verdict.categories) not in seen:
            self.verdicts.append(verdict)

    @property
    def mark(self) -> str | None:
        """What moderation did to this answer (``<action>:<category>``, the strongest), or None."""
        if self.blocked is not None:
            return self.blocked.mark
        masked = next((v for v in self.verdicts if v.action == "mask"), None)
        chosen = masked or (self.verdicts[0] if self.verdicts else None)
        return chosen.mark if chosen is not None else None
