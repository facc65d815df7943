"""Slot types: reading a value from a reply, finding one inside a longer message, and checking a model's value.

Three entry points, one set of rules:

* :func:`parse_answer` — the user's reply to the slot's own question ("1234", "是质量问题", "杭州市…");
* :func:`extract` — a value mentioned in passing ("DD20261105002 到哪了", "尾号是 1 2 3 4"); never for
  ``text``/``free_text``/``address`` slots, whose value is a whole reply;
* :func:`validate` — a value a model passed as a function argument.

Each returns the normalised value (order ids upper-case without separators, dates ISO ``YYYY-MM-DD``, numbers
as int/float, choices as the option's ``value``) or None when the text holds no valid value.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from kefu.flows.model import DEFAULT_ORDER_ID, Option, SlotSpec
from kefu.flows.repair import is_correction, is_question
from kefu.flows.texts import Lang
from kefu.text.normalize import normalize
from kefu.text.numerals import CHINESE_NUMBER, chinese_number, normalize_digits

_PHONE = re.compile(r"(?<!\d)(?:\+?86)?(1[3-9]\d{9})(?!\d)")
_LAST4 = re.compile(r"(?<![A-Za-z0-9])(\d{4})(?!\d)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_PREFIX_SPACE = re.compile(r"(?<![A-Za-z])([A-Z]{1,4})[ \-]+(?=\d)")
_NUM = "0-9零〇一二三四五六七八九十两"
_ISO_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?")
_MONTH_DAY = re.compile(rf"([{_NUM}]{{1,3}})\s*月\s*([{_NUM}]{{1,3}})\s*[日号]?")
_RELATIVE_DAYS = {
    "大前天": -3, "前天": -2, "昨天": -1, "今天": 0, "明天": 1, "后天": 2, "大后天": 3,
    "yesterday": -1, "today": 0, "tomorrow": 1,
}  # fmt: skip
_DEFAULT_ALIASES = {
    "order_id": ("订单号", "单号", "订单", "order number", "order id", "order"),
    "phone": ("手机号", "手机", "电话", "phone", "mobile"),
    "phone_last4": ("后四位", "尾号", "手机号", "手机", "电话", "phone", "last 4", "last four"),
    "date": ("日期", "date"),
    "address": ("地址", "收货地址", "address"),
    "choice": ("原因", "reason"),
}
# What an address is made of: administrative divisions, streets, numbers, buildings (中文), or an English street
# line. A reply needs two such parts (or one plus a number) to be read as an address.
_ADDRESS_PART = re.compile(
    r"省|市|自治区|区|县|镇|乡|村|街道|大街|街|路|道|巷|弄|胡同|里|号|栋|幢|座|楼|层|单元|室|户|小区|花园|大厦"
    r"|公寓|广场|苑|园|府|庭|城|湾|中心|院|宿舍|校区|门|厂|公司"
)
_EN_ADDRESS = re.compile(
    r"\d+[a-z]?\s+[a-z][a-z .'-]*\b(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|way|court|ct"
    r"|place|pl|square|sq|highway|hwy|terrace|close|crescent)\b"
    r"|\b(?:apt|apartment|suite|unit|flat|floor|building|room|district|city|province)\s*\.?\s*#?\w+",
    re.IGNORECASE,
)
ADDRESS_MIN_LENGTH = 6


@lru_cache(maxsize=64)
def order_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9])(?:{pattern})(?![A-Za-z0-9])", re.IGNORECASE)


def _order_ids(slot: SlotSpec, text: str) -> list[str]:
    pattern = order_pattern(slot.pattern or DEFAULT_ORDER_ID)
    digits = normalize_digits(text)
    found = [m.group(0) for m in pattern.finditer(digits)]
    # "DD 2026-1105-002": a capital prefix split from its digits (lower case would catch "is 2026…")
    joined = [m.group(0) for m in pattern.finditer(_PREFIX_SPACE.sub(r"\1", digits))]
    if len(joined) == len(found) and any(j != f for j, f in zip(joined, found, strict=True)):
        found = joined
    return [re.sub(r"[\s\-]+", "", f).upper() for f in found]


def _number(slot: SlotSpec, text: str) -> int | float | None:
    digits = normalize_digits(text)
    match = _NUMBER.search(digits)
    value: float | None = None
    if match:
        value = float(match.group(0))
    else:
        chinese = CHINESE_NUMBER.search(digits)
        found = chinese_number(chinese.group(0)) if chinese else None
        value = float(found) if found is not None else None
    return _in_range(slot, value)


def _in_range(slot: SlotSpec, value: float | None) -> int | float | None:
    if value is None:
        return None
    if slot.integer and not value.is_integer():
        return None
    if slot.minimum is not None and value < slot.minimum:
        return None
    if slot.maximum is not None and value > slot.maximum:
        return None
    return int(value) if value.is_integer() else value


def _option_words(option: Option) -> list[str]:
    words = [option.value, *option.label.parts(), *option.synonyms]
    # "*" is kept through normalisation (it would become a space): each side is normalised on its own
    return [w for w in ("*".join(normalize(p) for p in w.split("*")) for w in words) if w.strip("*")]


def _hit(word: str, said: str) -> int:
    """How much of ``said`` ``word`` covers (0: not in it): whole words for English; ``*`` stands for up to 12
    other characters, which count too — "色差*大" covers all of "色差有点大", so it outweighs "有点大"."""
    if "*" in word:
        parts = [re.escape(p.strip()) for p in word.split("*")]
        match = re.search(r".{0,12}?".join(parts), said)
        return len(match.group(0)) if match else 0
    if word.isascii():
        return len(word) if re.search(rf"\b{re.escape(word)}\b", said) else 0
    return len(word) if word in said else 0


def _loosely_in(word: str, said: str) -> bool:
    """``word`` (Chinese, 3+ characters) spelled out in order with at most one extra character between each
    ("质量有问题" for "质量问题" is exact; "尺码不太合适" for "尺码不合适")."""
    if len(word) < 3 or word.isascii() or "*" in word:
        return False
    pattern = ".?".join(re.escape(c) for c in word)
    return re.search(pattern, said) is not None


def _choice(slot: SlotSpec, text: str, *, by_number: bool) -> str | None:
    said = normalize(text)
    if not said:
        return None
    number = re.fullmatch(r"(?:原因|我)?\s*(?:选|选择|就)?\s*(?:第)?\s*(\d)\s*(?:个|项|号)?\s*吧?", said)
    if by_number and number and 1 <= int(number.group(1)) <= len(slot.options):
        return slot.options[int(number.group(1)) - 1].value
    best: tuple[int, str] | None = None
    loose: list[str] = []
    for option in slot.options:
        for word in _option_words(option):
            size = _hit(word, said)
            hit = size > 0
            if hit and (best is None or size > best[0]):
                best = (size, option.value)
            elif not hit and _loosely_in(word, said):
                loose.append(option.value)
    if best is None and len(set(loose)) == 1:
        return loose[0]
    return best[1] if best else None


# "我发你一个新地址 杭州市…" / "新地址是：杭州市…" / "address: 100 Main St": the words before the address itself
_ADDRESS_LEAD = re.compile(
    r"^.{0,12}?(?:新的?|收货|寄送|送货|正确的?|收件)?(?:地址|address)(?:是|为|改成|改为|换成|is)?\s*[:：,，]?\s*",
    re.IGNORECASE,
)


def _address(slot: SlotSpec, text: str) -> str | None:
    """A whole reply that reads as a postal address (and not as a question); None otherwise. Words that only
    announce it ("新地址是：") are left out when what follows is an address on its own."""
    lead = _ADDRESS_LEAD.match(text.strip())
    if lead and lead.end() < len(text.strip()):
        rest = _address_value(slot, text.strip()[lead.end() :])
        if rest is not None:
            return rest
    return _address_value(slot, text)


def _address_value(slot: SlotSpec, text: str) -> str | None:
    value = _text(slot, text)
    if value is None or len(value) < (slot.min_length or ADDRESS_MIN_LENGTH) or is_question(value):
        return None
    if is_correction(value):  # "门牌号错了 是120号" talks about an address, it is not one
        return None
    parts = len(_ADDRESS_PART.findall(value))
    if parts >= 2 or (parts == 1 and re.search(r"\d", value)) or _EN_ADDRESS.search(value):
        return value
    return None


def _date(text: str, today: date) -> str | None:
    digits = unicodedata.normalize("NFKC", text).casefold()  # not normalize_digits: it joins 2026-11-05
    try:
        if match := _ISO_DATE.search(digits):
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3))).isoformat()
        if match := _MONTH_DAY.search(digits):
            month, day = (_small_number(match.group(i)) for i in (1, 2))
            if month is not None and day is not None:
                return date(today.year, month, day).isoformat()
    except ValueError:  # 2月30日
        return None
    for word in sorted(_RELATIVE_DAYS, key=len, reverse=True):
        if word in digits:
            return (today + timedelta(days=_RELATIVE_DAYS[word])).isoformat()
    return None


def _small_number(text: str) -> int | None:
    return int(text) if text.isdigit() else chinese_number(text)


def _text(slot: SlotSpec, text: str) -> str | None:
    value = " ".join(text.split())
    if not value:
        return None
    if slot.min_length is not None and len(value) < slot.min_length:
        return None
    if slot.max_length is not None and len(value) > slot.max_length:
        return None
    return value


def _single(values: list[str]) -> str | None:
    unique = list(dict.fromkeys(values))
    return unique[0] if len(unique) == 1 else None


def extract(slot: SlotSpec, text: str, today: date) -> Any:
    """A value for ``slot`` mentioned anywhere in ``text`` (None when there is none or it is ambiguous)."""
    match slot.type:
        case "order_id":
            return _single(_order_ids(slot, text))
        case "phone":
            return _single(_PHONE.findall(normalize_digits(text)))
        case "phone_last4":
            digits = normalize_digits(text)
            phones = _PHONE.findall(digits)
            if phones:
                return _single([p[-4:] for p in phones])
            return _single(_LAST4.findall(digits))
        case "number":
            return _number(slot, text)
        case "choice":
            return _choice(slot, text, by_number=False)
        case "date":
            return _date(text, today)
        case _:
            return None


def parse_answer(slot: SlotSpec, text: str, today: date) -> Any:
    """The value of a reply to ``slot``'s question (None when it is not a valid answer)."""
    match slot.type:
        case "text":
            return _text(slot, text)
        case "free_text":
            return " ".join(text.split()) or None
        case "address":
            return _address(slot, text)
        case "choice":
            return _choice(slot, text, by_number=True)
        case _:
            return extract(slot, text, today)


def validate(slot: SlotSpec, value: Any, today: date) -> Any:
    """A model-supplied value checked and normalised by the slot's rules (None when invalid)."""
    if value is None or isinstance(value, dict | list):
        return None
    if slot.type == "number":
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return _in_range(slot, float(value))
    text = str(value).strip()
    if slot.type == "number":  # the whole value is the number ("2026-11-13" is not 20261113)
        digits = normalize_digits(text) if not re.search(r"\d[\s\-]+\d", text) else ""
        number = float(digits) if re.fullmatch(r"-?\d+(?:\.\d+)?", digits) else chinese_number(text)
        return _in_range(slot, None if number is None else float(number))
    if slot.type == "order_id":
        compact = re.sub(r"[\s\-]+", "", normalize_digits(text)).upper()
        return compact if re.fullmatch(slot.pattern or DEFAULT_ORDER_ID, compact, re.IGNORECASE) else None
    if slot.type in ("phone", "phone_last4"):
        compact = re.sub(r"[\s\-]+", "", normalize_digits(text))
        if slot.type == "phone":
            match = re.fullmatch(r"(?:\+?86)?(1[3-9]\d{9})", compact)
            return match.group(1) if match else None
        return compact if re.fullmatch(r"\d{4}", compact) else None
    if slot.type == "choice":
        exact = next((o.value for o in slot.options if o.value == text), None)
        return exact or _choice(slot, text, by_number=False)
    return parse_answer(slot, text, today)


def aliases(slot: SlotSpec) -> tuple[str, ...]:
    """Words that name the slot in a correction: its own aliases, else defaults for its type."""
    return slot.aliases or _DEFAULT_ALIASES.get(slot.type, ())


def describes(slot: SlotSpec) -> str:
    """What a valid answer looks like, for a model or a log line (one short English phrase)."""
    return {
        "order_id": "an order number",
        "phone": "an 11-digit mobile number",
        "phone_last4": "the last 4 digits of a phone number",
        "number": "a number",
        "choice": "one of: " + ", ".join(o.value for o in slot.options),
        "date": "a date",
        "address": "a postal address (province/city/district, street and number), not a question",
        "text": "a short text",
        "free_text": "any text",
    }[slot.type]


def display(slot: SlotSpec, value: Any, lang: Lang) -> str:
    """How a value reads in a reply ("已更新为 …"; ``{labels.x}`` in templates)."""
    if slot.type == "choice":
        option = next((o for o in slot.options if o.value == value), None)
        if option is not None:
            return option.label.get(lang)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)
