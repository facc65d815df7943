"""The automaton over a compact alphabet finds exactly what a plain search finds, at the same places."""

from __future__ import annotations

import random

import pytest

from kefu.moderation.automaton import Automaton


def naive(keys: set[str], text: str) -> list[tuple[int, str]]:
    return sorted((i + len(k) - 1, k) for k in keys for i in range(len(text)) if text.startswith(k, i))


@pytest.mark.parametrize(("count", "alphabet"), [(20, 40), (2000, 3000), (6000, 9000)])
def test_matches_and_positions(count: int, alphabet: int) -> None:
    rng = random.Random(count)
    chars = [chr(0x4E00 + i) for i in range(alphabet)] + list("abc12")
    keys = {"".join(rng.choice(chars) for _ in range(rng.randint(1, 4))) for _ in range(count)}
    automaton = Automaton({k: k for k in keys})
    assert (automaton._table is None) == (count == 20)  # a big lexicon is spelled in base 64
    if count == 6000:
        assert automaton._width == 3  # more than 64 * 64 distinct characters
    sample = sorted(keys)
    for _ in range(30):
        # Texts made of terms, term characters and characters no term has.
        parts = [rng.choice(sample) if rng.random() < 0.3 else rng.choice(chars + ["我", "x", "9"]) for _ in range(80)]
        text = "".join(parts)
        assert sorted(automaton.iter(text)) == naive(keys, text)


def test_no_match_across_characters() -> None:
    automaton = Automaton({chr(0x4E00 + i): i for i in range(300)} | {"好的": "ok"})
    assert list(automaton.iter("")) == [] and list(automaton.iter("你好吗")) == []
    assert list(automaton.iter("x好的")) == [(2, "ok")]
