"""What the model sees: the system prompt plus as many recent messages as fit a token budget."""

from __future__ import annotations

from collections.abc import Sequence

from kefu.llm.base import ChatMessage
from kefu.store.base import ContextMessage, MessageRecord, MessageStatus


def estimate_tokens(text: str) -> int:
    """A cheap, slightly pessimistic token estimate.

    UTF-8 byte length / 3 counts a CJK character (3 bytes) as one token and English as ~3 characters per
    token, close to DeepSeek's and OpenAI's tokenizers without loading one.
    """
    return len(text.encode()) // 3 + 4  # +4: per-message framing overhead


# Appended to an answer that was cut off, so the model does not take half a sentence for what it said.
CUT_OFF = "\n[这条回答被中断，没有说完]"


def assistant_context(text: str, status: MessageStatus) -> ContextMessage:
    """How one of the bot's stored answers is replayed to the model: an interrupted one is marked as cut off."""
    return ContextMessage("assistant", text + CUT_OFF if status == "interrupted" else text)


def context_from_records(records: Sequence[MessageRecord]) -> list[ContextMessage]:
    """Stored messages worth replaying to the model (answers with no text are left out). A person's replies are
    the shop's side of the conversation too: the model sees them as assistant turns, marked as a person's."""
    return [
        ContextMessage(role="assistant", content=f"[人工客服 {r.author or ''}] {r.content}")
        if r.role == "agent"
        else assistant_context(r.content, r.status)
        if r.role == "assistant"
        else ContextMessage(role=r.role, content=r.content)
        for r in records
        if r.content
    ]


def build_messages(
    system_prompt: str,
    history: Sequence[ContextMessage],
    user_text: str,
    *,
    token_budget: int,
) -> tuple[ChatMessage, ...]:
    """System prompt, then the newest history that fits ``token_budget``, then the new user message.

    The system prompt and the new message are always sent; history is cut from the oldest end, and never
    starts with an assistant message (a reply without its question confuses models).
    """
    budget = token_budget - estimate_tokens(system_prompt) - estimate_tokens(user_text)
    kept: list[ContextMessage] = []
    for message in reversed(history):
        cost = estimate_tokens(message.content)
        if cost > budget:
            break
        budget -= cost
        kept.append(message)
    kept.reverse()
    while kept and kept[0].role != "user":
        kept.pop(0)
    messages = [ChatMessage(role="system", content=system_prompt)] if system_prompt else []
    messages.extend(ChatMessage(role="user" if m.role == "user" else "assistant", content=m.content) for m in kept)
    messages.append(ChatMessage(role="user", content=user_text))
    return tuple(messages)
