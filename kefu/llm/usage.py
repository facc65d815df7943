"""Token counts of one model call, split the way providers bill them, and the estimate when none were sent.

Providers report cache hits differently: DeepSeek sends ``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens``,
OpenAI ``prompt_tokens_details.cached_tokens``; reasoning models add ``completion_tokens_details.reasoning_tokens``
(part of ``completion_tokens``). :func:`parse_usage <kefu.llm.openai_wire.parse_usage>` flattens them into
``Usage.extra``; this module reads them back (only ``kefu.llm`` knows the wire names).

When no usage arrived (the provider rejected ``stream_options``, or the stream was cut off before its usage chunk)
the counts are estimated from characters (DeepSeek's published rule of thumb): a CJK character ≈ 0.6 token, any
other non-space character ≈ 0.3 token, plus :data:`MESSAGE_OVERHEAD` tokens per message sent; the whole prompt is
counted as a cache miss (the dearer input price), so an estimate errs towards spending more, not less.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from kefu.llm.base import ChatRequest, Usage

MESSAGE_OVERHEAD = 4  # role and separators of each message in a chat template
CJK_TOKENS = 0.6
OTHER_TOKENS = 0.3


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """One call's tokens. ``completion`` is the provider's ``completion_tokens``, reasoning included;
    ``reasoning`` is the part of it the model spent thinking."""

    prompt_cache_hit: int
    prompt_cache_miss: int
    completion: int
    reasoning: int = 0
    estimated: bool = False

    @property
    def prompt(self) -> int:
        """All prompt tokens (hit + miss)."""
        return self.prompt_cache_hit + self.prompt_cache_miss


def counts_from_usage(usage: Usage) -> TokenCounts:
    """The billed split of a provider's usage report (a missing cache field means no cache hit)."""
    extra = usage.extra
    prompt = max(usage.prompt_tokens, 0)
    hit = extra.get("prompt_cache_hit_tokens")
    miss = extra.get("prompt_cache_miss_tokens")
    if hit is None and miss is None:
        hit = min(max(extra.get("cached_tokens", 0), 0), prompt)  # OpenAI: prompt_tokens_details.cached_tokens
        miss = prompt - hit
    elif hit is None:
        assert miss is not None
        hit = max(prompt - miss, 0)
    elif miss is None:
        miss = max(prompt - hit, 0)
    reasoning = max(extra.get("reasoning_tokens", 0), 0)
    completion = max(usage.completion_tokens, 0)
    return TokenCounts(hit, miss, completion, min(reasoning, completion))


def is_cjk(ch: str) -> bool:
    """CJK ideographs, kana, hangul and full-width forms: the characters a tokenizer spends more on."""
    code = ord(ch)
    return (
        0x3000 <= code <= 0x9FFF  # CJK punctuation, kana, ideographs (extension A included)
        or 0xAC00 <= code <= 0xD7AF  # hangul syllables
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x3134F  # ideograph extensions B-G
    )


def estimate_tokens(text: str) -> float:
    """Estimated tokens of ``text`` (unrounded, so that parts can be summed before rounding)."""
    return sum(CJK_TOKENS if is_cjk(ch) else OTHER_TOKENS for ch in text if not ch.isspace())


def request_texts(request: ChatRequest) -> Iterable[str]:
    """Every text a request sends the model: messages, their tool calls, and the tools offered."""
    for message in request.messages:
        yield message.content
        for call in message.tool_calls:
            yield call.name
            yield call.arguments
    for tool in request.tools:
        yield tool.name
        yield tool.description
        yield json.dumps(tool.parameters, ensure_ascii=False)


def estimate_counts(request: ChatRequest | None, answer_chars: Iterable[str]) -> TokenCounts:
    """Counts estimated from characters (see the module docstring): the prompt all cache miss, the text received
    (answer, reasoning and tool-call arguments) as completion."""
    prompt = 0
    if request is not None:
        prompt = math.ceil(sum(estimate_tokens(t) for t in request_texts(request))) + MESSAGE_OVERHEAD * len(
            request.messages
        )
    completion = math.ceil(sum(estimate_tokens(t) for t in answer_chars))
    return TokenCounts(0, prompt, completion, 0, estimated=True)
