"""The sensitive-word lexicon: matching as people evade it, ordinary text it must leave alone, verdicts, and the
contract of a streamed check (``partial`` and ``pending``)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kefu.moderation import Category, Moderator
from kefu.moderation.lexicon import DEFAULT_REPLY, MAX_GAP

ACTIONS = {"abuse": "mask", "fraud": "block", "ads": "flag", "en": "mask"}


def build(**terms: list[str]) -> Moderator:
    categories = {name: Category(name, ACTIONS[name]) for name in terms}  # type: ignore[arg-type]
    return Moderator.build(categories, terms)


@pytest.mark.parametrize(
    "text", ["你个傻逼", "傻 逼", "傻*逼", "傻\u200b逼", "傻。逼！", "ＳＢ傻逼", "傻 * 逼", "傻" + "\u200b" * 20 + "逼"]
)
def test_evasions_still_match_and_map_back(text: str) -> None:
    hits = build(abuse=["傻逼"]).scan(text)
    assert len(hits) == 1
    span = text[hits[0].start : hits[0].end]
    assert span[0] == "傻" and span[-1] == "逼"


def test_words_a_sentence_apart_are_not_a_term() -> None:
    moderator = build(abuse=["傻逼"])
    assert moderator.scan("你真傻" + "。" * (MAX_GAP + 1) + "逼我买这个") == []
    assert len(moderator.scan("傻" + "。" * MAX_GAP + "逼")) == 1


def test_traditional_and_full_width_forms() -> None:
    moderator = build(fraud=["刷单返现"], en=["idiot"])
    assert moderator.check("可以刷單返現嗎").action == "block"
    assert moderator.check("you ＩＤＩＯＴ!").action == "mask"


@pytest.mark.parametrize("text", ["first class", "pass", "assemble", "bass2", "class\u200bic"])
def test_english_terms_match_whole_words_only(text: str) -> None:
    assert build(en=["ass"]).scan(text) == []


@pytest.mark.parametrize("text", ["what an ASS.", "ass", "傻ass", "2ass", "f.u.c.k", "fu\u200bck", "F*U*C*K!"])
def test_english_terms_are_found_in_any_case_and_with_inserted_symbols(text: str) -> None:
    assert len(build(en=["ass", "fuck"]).scan(text)) == 1


def test_a_space_splits_english_words() -> None:
    moderator = build(en=["sb", "fuck"])
    assert moderator.scan("S B两个码") == [] and moderator.scan("f u c k") == []
    assert len(moderator.scan("S.B")) == 1


def test_the_english_edge_of_a_chinese_term_is_a_word_boundary() -> None:
    moderator = build(ads=["加V", "QQ群"])
    assert moderator.scan("可以加VIP吗") == [] and moderator.scan("加QQ群") != []
    assert moderator.check("加v12345").action == "flag"  # a letter may touch digits
    assert moderator.check("加 v：abc").action == "flag"
    assert moderator.scan("XQQ群") == []


def test_hits_report_the_term_as_written_and_every_category() -> None:
    moderator = Moderator.build(
        {"abuse": Category("abuse", "mask"), "ads": Category("ads", "flag")},
        {"abuse": ["傻 逼", "傻逼"], "ads": ["傻逼"]},
    )
    hits = moderator.scan("说傻逼")
    assert {(h.term, h.category, h.start, h.end) for h in hits} == {(("傻 逼", "abuse", 1, 3)), ("傻逼", "ads", 1, 3)}
    assert moderator.term_count == 2


def test_strongest_action_wins_and_masking_keeps_length() -> None:
    moderator = build(abuse=["傻逼"], ads=["加微信"], fraud=["套现"])
    verdict = moderator.check("傻 逼，加微信")
    assert verdict.action == "mask" and verdict.text == "* *，加微信" and verdict.mark == "mask:abuse"
    assert verdict.categories == ("abuse", "ads") and verdict.reply is None
    blocked = moderator.check("加微信教你套现")
    assert blocked.action == "block" and blocked.mark == "block:fraud" and blocked.reply == DEFAULT_REPLY
    assert blocked.categories == ("ads", "fraud")
    clean = moderator.check("正常的问题：运费多少？")
    assert clean.action == "allow" and clean.mark is None and clean.text == "正常的问题：运费多少？"


def test_a_blocking_category_answers_with_its_own_reply_and_where_limits_it() -> None:
    moderator = Moderator.build(
        {
            "a": Category("a", "block", frozenset({"output"}), reply="不行。"),
            "b": Category("b", "block", frozenset({"input"})),
        },
        {"a": ["禁词"], "b": ["暗号"]},
        default_reply="默认。",
    )
    assert moderator.check("禁词", where="input").action == "allow"
    assert moderator.check("暗号和禁词", where="output").reply == "不行。"
    assert moderator.check("暗号和禁词", where="input").reply == "默认。"
    assert [h.category for h in moderator.scan("暗号和禁词")] == ["b", "a"]  # scan: every category


def test_a_big_lexicon_matches_the_same_way() -> None:
    filler = [chr(0x4E00 + i) + chr(0x4E01 + i) + "甲" for i in range(0, 3000, 2)]  # 1500 distinct first characters
    moderator = Moderator.build(
        {"abuse": Category("abuse", "mask"), "ads": Category("ads", "flag")},
        {"abuse": [*filler, "傻逼"], "ads": ["加V"]},
    )
    verdict = moderator.check("你个傻 * 逼，加v：123，可以加VIP吗")
    assert verdict.text == "你个* * *，加v：123，可以加VIP吗"
    assert [(h.term, h.start, h.end) for h in verdict.hits] == [("傻逼", 2, 7), ("加V", 8, 10)]


def test_window_and_empty() -> None:
    empty = Moderator.empty_moderator()
    assert empty.empty and empty.window == 0 and empty.check("傻逼").action == "allow" and empty.scan("傻逼") == []
    assert not empty.may_hit("傻逼") and empty.pending("傻") == 1
    moderator = Moderator.build({"a": Category("a", "mask")}, {"a": ["ＡＢＣＤ", "傻逼"]}, window=3)
    assert moderator.window == 4  # never shorter than the longest term
    assert Moderator.build({"a": Category("a", "mask")}, {"a": ["傻逼"]}, window=16).window == 16


def test_a_long_category_name_keeps_the_mark_short() -> None:
    name = "x" * 100
    verdict = Moderator.build({name: Category(name, "flag")}, {name: ["加微信"]}).check("加微信")
    assert verdict.mark is not None and len(verdict.mark) == 64 and verdict.mark.startswith("flag:xxx")


# --- streaming: the engine checks what it holds with partial=True and releases text up to pending() ---


def test_pending_holds_only_an_ending_that_may_become_a_term() -> None:
    moderator = build(abuse=["傻逼"], ads=["加微信"], en=["ass"])
    assert moderator.pending("好的，请不要") == 6
    assert moderator.pending("请不要加") == 3 and moderator.pending("请不要加微") == 3
    assert moderator.pending("你真傻 *") == 2  # "傻" may still be followed by "逼"
    assert moderator.pending("你真傻" + "。" * (MAX_GAP + 1)) == 7  # too far apart now: nothing held
    assert moderator.pending("first cl") == 6  # an open English word: its last letter (and the one before) wait
    assert moderator.pending("you ass") == 4 and moderator.pending("you ass!") == 8
    assert moderator.pending("a cl ") == 5


def test_partial_leaves_what_the_next_piece_decides() -> None:
    moderator = Moderator.build(
        {"abuse": Category("abuse", "mask"), "fraud": Category("fraud", "block"), "en": Category("en", "mask")},
        {"abuse": ["傻逼"], "fraud": ["傻逼玩意"], "en": ["ass"]},
    )
    assert moderator.check("你个傻逼", partial=True).action == "allow"  # may become "傻逼玩意"
    assert moderator.check("你个傻逼", partial=False).action == "mask"
    assert moderator.check("你个傻逼，", partial=True).action == "allow"  # a separator may sit inside a term
    assert moderator.check("你个傻逼，我", partial=True).text == "你个**，我"
    assert moderator.check("you ass", partial=True).action == "allow"  # may be "assemble"
    assert moderator.check("you ass!", partial=True).action == "mask"


def test_a_held_ending_never_splits_a_hit() -> None:
    moderator = Moderator.build(
        {"fraud": Category("fraud", "block"), "abuse": Category("abuse", "mask")},
        {"fraud": ["代开发票"], "abuse": ["发票代开"]},
    )
    # "发票" may begin "发票代开": held, and with it the whole of the blocked "代开发票" (not just its end).
    assert moderator.pending("帮我代开发票") == 2
    assert moderator.check("帮我代开发票", partial=True).action == "allow"
    assert moderator.check("帮我代开发票。", partial=True).action == "allow"  # "发票。代开" is still possible
    assert moderator.check("帮我代开发票，谢谢", partial=True).action == "block"


MODERATOR = Moderator.build(
    {
        "abuse": Category("abuse", "mask"),
        "fraud": Category("fraud", "block"),
        "ads": Category("ads", "flag"),
        "en": Category("en", "mask"),
    },
    {
        "abuse": ["傻逼", "傻逼玩意", "发票代开"],
        "fraud": ["刷单返现", "傻逼玩意儿", "代开发票"],
        "ads": ["加V", "加微信"],
        "en": ["ass", "fuck"],
    },
)


def streamed(moderator: Moderator, pieces: list[str]) -> tuple[str, bool]:
    """What the shopper sees of a streamed answer, as kefu.engine.output releases it; and whether it was blocked."""
    shown = held = ""
    for piece in [*pieces, None]:
        final = piece is None
        held += piece or ""
        if not moderator.may_hit(held):
            shown, held = shown + held, ""
            continue
        verdict = moderator.check(held, where="output", partial=not final)
        if verdict.action == "block":
            return shown, True
        held = verdict.text
        cut = len(held) if final else moderator.pending(held)
        shown, held = shown + held[:cut], held[cut:]
    return shown, False


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.text(st.sampled_from("傻逼玩意儿刷单返现加微信代开发票Vvipasclfuk 　*.，。\u200b好的7"), max_size=4),
        max_size=10,
    )
)
def test_any_chunking_shows_what_checking_the_whole_answer_would(pieces: list[str]) -> None:
    whole = "".join(pieces)
    verdict = MODERATOR.check(whole, where="output")
    shown, blocked = streamed(MODERATOR, pieces)
    assert blocked == (verdict.action == "block")
    if blocked:
        first = next(h for h in verdict.hits if h.action == "block")
        assert len(shown) <= first.start  # nothing of the blocked term was shown
    else:  # the same stars; a masked term may also serve as the separator inside another ("加傻逼微信")
        assert len(shown) == len(whole)
        assert all(a == b or b == "*" for a, b in zip(verdict.text, shown, strict=True))
