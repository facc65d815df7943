"""A learned intent classifier over the flows' trigger phrases: character n-gram TF-IDF + logistic regression.

The rules (keywords, example similarity) catch the phrasings a flow file lists; this catches the ones it does not
("东西一直没到是怎么回事", "帮我瞅瞅这单"). It is trained when the router is built (a few hundred short texts:
tens of milliseconds) on each flow's examples and keywords, against a ``none`` class of text that asks for no task
(how-to and policy questions, chit-chat, the flows' own ``exclude`` phrases), so "none of these" stays an answer:
a flow is only returned when its probability and its margin over the runner-up both clear a threshold.

scikit-learn is imported here only, when the first router is built (CLI start-up does not pay for it).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kefu.flows.model import FlowSet
from kefu.text.normalize import is_cjk, normalize
from kefu.text.pinyin import syllable

NONE = ""  # the class of text that starts no flow
MIN_PROBABILITY = 0.5
MIN_MARGIN = 0.25
C = 20.0  # inverse regularisation of the logistic regression
SOUND_WEIGHT = 0.5  # pinyin features against character features

# Text that asks for no task: the "none" class. General shop talk, not one shop's FAQ (a bot's own questions
# are added through FlowSet.negatives).
NEGATIVES: tuple[str, ...] = (
    *("运费多少", "运费谁出", "退货运费谁出", "包邮吗", "满多少包邮", "怎么退货", "退货流程是什么", "怎么申请退款"),
    *("退款多久到账", "几天能到", "一般几天发货", "发什么快递", "可以开发票吗", "怎么开发票", "有优惠券吗"),
    *("有没有优惠", "会员有什么权益", "怎么注册", "忘记密码怎么办", "尺码怎么选", "这个有货吗", "什么时候补货"),
    *("支持货到付款吗", "可以用花呗吗", "怎么修改收货地址", "在哪里改地址", "物流信息不更新怎么办"),
    *("七天无理由怎么算", "退货地址是哪里", "营业时间", "客服几点下班", "你们是正品吗", "能便宜点吗"),
    *("你好", "在吗", "谢谢", "好的", "再见", "你是机器人吗", "你叫什么名字", "今天天气怎么样", "哈哈"),
    *("你们店在哪", "有实体店吗", "怎么联系你们", "价格多少", "这个多少钱", "这件衣服怎么洗"),
    *("how much is shipping", "do you ship abroad", "what is your return policy", "how do i return an item"),
    *("how long does delivery take", "do you have a discount", "hello", "thanks", "are you a bot", "ok"),
    *("what payment methods do you accept", "how do i reset my password", "is this in stock"),
    *("取消订单", "我要取消订单", "cancel my order", "退款进度", "退款到哪了", "refund status", "退会员"),
)
_PHONE = re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)")
_ORDER = re.compile(r"[A-Za-z]{0,4}\d{6,20}")
_DIGITS = re.compile(r"\d+")
# Data given with the request says nothing about which task it is: "尾号1234", "phone ends in 1234".
_DATA = re.compile(
    r"(?:手机号?|电话)?(?:尾号|后四位|后4位)(?:是|为)?\s*0|(?:手机号?|电话)\s*(?:是|为)?\s*0"
    r"|\b(?:my )?(?:phone|mobile)(?: number)? (?:ends (?:in|with)|last (?:4|four)(?: digits)?(?: are)?) 0"
    r"|\blast (?:4|four)(?: digits)?(?: are| is)? 0|(?:订单号?|单号|order(?: number| id)?)\s*(?:是|为|is)?\s*#"
)


def without_numbers(text: str) -> str:
    """``text`` without order numbers, phone numbers and other digit runs (for example matching)."""
    return " ".join(_DIGITS.sub(" ", _ORDER.sub(" ", _PHONE.sub(" ", text))).split())


def features_text(text: str) -> str:
    """What the classifier reads: normalised text with order numbers and digits as placeholders (so an order
    number in the message weighs as "an order number", not as its characters) and phone digits left out."""
    said = _ORDER.sub(" # ", _PHONE.sub(" ", normalize(text)))
    said = " ".join(_DIGITS.sub(" 0 ", said).split())
    return " ".join(_DATA.sub(" ", said).split())


_WORD = re.compile(r"[a-z][a-z']+")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_COMMON = frozenset(
    "the and you your for with this that what can are was have has not but she him her his its our out get got "
    "just now please want need like would could should will does did how".split()
)


# Pairs of characters any request is made of ("帮我看一下"): they say nothing about which task it is.
_FILLER_PAIRS = frozenset(
    "帮我 你帮 给我 帮忙 麻烦 一下 我的 我想 我要 你们 请问 这个 那个 一个 可以 什么 怎么 看看 事情 情况 之前 上次 "
    "处理 跟进 弄一 一弄 搞一".split()
)


def _sounds(run: str) -> list[str]:
    return [syllable(c) or c for c in run]


_FILLER_SOUNDS = frozenset(f"{a}-{b}" for pair in _FILLER_PAIRS for a, b in [_sounds(pair)])


def evidence(said: str) -> set[str]:
    """What a guess must share with its flow's phrases to count: a whole English word (not a common one), two
    Chinese characters in a row, or two syllables in a row ("推货" and "退货" share tui-huo). A message that only
    looks like a flow's phrases letter by letter ("humanity" for "human") is no evidence."""
    found = {w for w in _WORD.findall(said) if w not in _COMMON and len(w) > 2}
    for run in _CJK_RUN.findall(said):
        found.update(run[i : i + 2] for i in range(len(run) - 1))
        sounds = _sounds(run)
        found.update(f"{a}-{b}" for a, b in zip(sounds, sounds[1:], strict=False))
    return found - _FILLER_PAIRS - _FILLER_SOUNDS


def pinyin_text(text: str) -> str:
    """The Chinese characters of ``text`` as toneless pinyin syllables (so "推货" reads like "退货")."""
    out = []
    for char in text:
        sound = syllable(char) if is_cjk(char) else None
        out.append(sound if sound else " | ")
    return " ".join(out)


@dataclass(frozen=True, slots=True)
class Guess:
    """The classifier's best flow (``NONE`` for no task), its probability and the runner-up's."""

    flow: str
    probability: float
    runner_up: float

    @property
    def confident(self) -> bool:
        """Whether the guess names a flow clearly enough to start it."""
        return (
            self.flow != NONE
            and self.probability >= MIN_PROBABILITY
            and self.probability - self.runner_up >= MIN_MARGIN
        )


def training_set(flows: FlowSet, negatives: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(texts, labels): every flow's examples and keywords under its name, and ``NONE`` for text of no task."""
    texts: list[str] = []
    labels: list[str] = []
    for flow in flows.flows.values():
        for phrase in (*flow.examples, *flow.keywords):
            texts.append(features_text(phrase))
            labels.append(flow.name)
    for phrase in (*NEGATIVES, *negatives, *(w for f in flows.flows.values() for w in f.exclude)):
        texts.append(features_text(phrase))
        labels.append(NONE)
    return texts, labels


class IntentClassifier:
    """Character 1–3-grams (within word boundaries) and pinyin syllable 1–2-grams, TF-IDF weighted, into a
    logistic regression over :func:`training_set`."""

    def __init__(self, flows: FlowSet, negatives: tuple[str, ...] = ()) -> None:
        from scipy.sparse import hstack  # type: ignore[import-untyped]  # noqa: PLC0415 - heavy: only when used
        from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]  # noqa: PLC0415
        from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]  # noqa: PLC0415
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # noqa: PLC0415

        texts, labels = training_set(flows, negatives)
        self._hstack: Any = hstack
        self._chars: Any = None
        self._sounds: Any = None
        self._model: Any = None
        self.classes: tuple[str, ...] = tuple(dict.fromkeys(labels))
        self._evidence: dict[str, set[str]] = {}
        for said, name in zip(texts, labels, strict=True):
            if name != NONE:
                self._evidence.setdefault(name, set()).update(evidence(said))
        if len([c for c in self.classes if c != NONE]) == 0:
            return  # no flow has a trigger phrase: nothing to learn
        self._chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
        self._sounds = TfidfVectorizer(
            analyzer="word", ngram_range=(1, 2), token_pattern=r"[a-z]+", preprocessor=pinyin_text, sublinear_tf=True
        )
        matrix = hstack([self._chars.fit_transform(texts), self._sounds.fit_transform(texts) * SOUND_WEIGHT])
        self._model = LogisticRegression(C=C, max_iter=200, class_weight="balanced", solver="newton-cg")
        # One BLAS thread: a problem this small only loses to thread start-up, and on a busy host (other
        # workers, other replicas) oversubscribed threads made a 30 ms fit take seconds.
        with threadpool_limits(limits=1):
            self._model.fit(matrix.tocsr(), labels)
        self.classes = tuple(str(c) for c in self._model.classes_)
        # Scoring one message by hand: the vectorizers' own transform costs ~0.35 ms each in input checks alone.
        self._parts = [
            (self._chars.build_analyzer(), self._chars.vocabulary_, self._chars.idf_, 0, 1.0),
            (
                self._sounds.build_analyzer(),
                self._sounds.vocabulary_,
                self._sounds.idf_,
                len(self._chars.idf_),
                SOUND_WEIGHT,
            ),
        ]
        self._weights = self._model.coef_.T.copy()  # feature → per-class weight
        self._intercept = self._model.intercept_.copy()

    def _features(self, said: str) -> Any:
        """The message's feature matrix as the model was trained on it (for checks against ``_scores``)."""
        chars, sounds = self._chars.transform([said]), self._sounds.transform([said]) * SOUND_WEIGHT
        return self._hstack([chars, sounds]).tocsr()

    def _probabilities(self, said: str) -> list[float]:
        """Class probabilities of one message: sublinear TF-IDF, L2-normalised per feature family, then the
        logistic regression's softmax — what ``predict_proba`` computes, without its per-call overhead."""
        indices: list[int] = []
        values: list[float] = []
        for analyze, vocabulary, idf, offset, weight in self._parts:
            counts = Counter(i for gram in analyze(said) if (i := vocabulary.get(gram)) is not None)
            part = {i: (1.0 + math.log(n)) * float(idf[i]) for i, n in counts.items()}
            norm = math.sqrt(sum(v * v for v in part.values())) or 1.0
            for i, v in part.items():
                indices.append(offset + i)
                values.append(weight * v / norm)
        logits = [float(x) for x in self._intercept + (values @ self._weights[indices] if indices else 0.0)]
        if len(logits) == 1:  # two classes (one flow and "none"): one logit, for the second class
            logits = [0.0, logits[0]]
        exp = [math.exp(x - max(logits)) for x in logits]
        return [e / sum(exp) for e in exp]

    def guess(self, text: str) -> Guess:
        """The most likely flow for ``text`` (``NONE`` when nothing was learned or the text is empty)."""
        said = features_text(text)
        if self._model is None or not said:
            return Guess(NONE, 1.0, 0.0)
        probabilities = self._probabilities(said)
        ranked = sorted(zip(probabilities, self.classes, strict=True), reverse=True)
        runner_up = float(ranked[1][0]) if len(ranked) > 1 else 0.0
        best = ranked[0][1]
        if best != NONE and not evidence(said) & self._evidence.get(best, set()):
            return Guess(NONE, 1.0 - float(ranked[0][0]), float(ranked[0][0]))  # a likeness of letters only
        return Guess(best, float(ranked[0][0]), runner_up)
