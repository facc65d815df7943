"""Decide where a turn's answer comes from and produce it: FAQ, model (grounded in passages), or degraded.

Order: a running task flow, or one the text clearly asks for, answers first (``flow``). Then a confident FAQ
match answers directly (``faq``, no model call). Otherwise the model answers (and may start a flow by calling
it as a function), grounded in retrieved passages when there are any (``kb``) or not (``llm``). When no model
can answer before the first token (not configured, every upstream down, retries exhausted), the knowledge base
answers what it can and the rest gets an apology that offers a human (``fallback``) — never an empty bubble.
After the first token, a broken upstream is an error: the answer is not silently replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kefu.engine import events as ev
from kefu.engine.history import build_messages
from kefu.engine.knowledge import Knowledge, KnowledgeResult
from kefu.engine.sharing import SharedAnswers
from kefu.engine.tasks import TaskReply, Tasks, TurnRef
from kefu.engine.writer import DeltaWriter
from kefu.errors import UpstreamError, UpstreamNotConfigured
from kefu.llm.base import ChatModel, ChatRequest, Finish, TextDelta, Usage
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.store.base import ContextMessage, MessageStatus

log = get_logger("kefu.answer")

GROUNDING = (
    "\n\n以下是知识库中与用户问题相关的资料。只根据这些资料回答；资料里没有的内容，请如实说不知道，并可建议转人工客服。\n"
    "Answer only from the reference material below; if it does not contain the answer, say you don't know.\n"
)


@dataclass(slots=True)
class Outcome:
    """How a turn ended: stored status, the terminal event, and what to record about the answer."""

    status: MessageStatus
    terminal: tuple[str, str]
    source: str = "llm"
    model: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class CannedTexts:
    """Texts the bot says on its own (the bot directory can override them)."""

    suggest_intro: str = "您是不是想问：\n"
    apology: str = (
        "抱歉，我暂时无法回答这个问题。您可以换个说法再问一次，或者回复“转人工”联系人工客服。"
        "\n(Sorry, I can't answer that right now. Try rephrasing, or ask for a human agent.)"
    )


class Answerer:
    """Produces the answer text of a turn into a :class:`DeltaWriter` and says how it ended."""

    def __init__(
        self,
        *,
        model: ChatModel | None,
        knowledge: Knowledge,
        metrics: Metrics,
        system_prompt: str,
        token_budget: int,
        texts: CannedTexts | None = None,
        shared: SharedAnswers | None = None,
        content_version: str = "",
        tasks: Tasks | None = None,
    ) -> None:
        self._model = model
        self._knowledge = knowledge
        self._metrics = metrics
        self._token_budget = token_budget
        self._shared = shared
        self.use_bot(system_prompt=system_prompt, texts=texts, tasks=tasks, content_version=content_version)

    def use_bot(
        self, *, system_prompt: str, texts: CannedTexts | None, tasks: Tasks | None, content_version: str
    ) -> None:
        """Switch to (re)loaded bot content; turns already running keep what they started with."""
        self._system_prompt = system_prompt
        self._texts = texts or CannedTexts()
        self._tasks = tasks
        # Answers are shared only between turns that would send the model the very same request.
        model = self._model
        self._version = f"{content_version}|{model.name if model else ''}|{model.model if model else ''}"

    @property
    def tasks(self) -> Tasks | None:
        """The flow router in use (None for a bot without flows)."""
        return self._tasks

    async def answer(
        self,
        turn_id: str,
        user_id: str,
        text: str,
        history: list[ContextMessage],
        writer: DeltaWriter,
        *,
        session_id: str = "",
    ) -> Outcome:
        """Answer ``text``; raises only for errors that should end the turn with an ``error`` event."""
        tasks = self._tasks
        turn = TurnRef(turn_id=turn_id, session_id=session_id, user_id=user_id)
        if tasks is not None and session_id:
            task_reply = await tasks.continue_or_route(turn, text, fresh_context=not history)
            if task_reply is not None:
                writer.write(task_reply.text)
                return self._flow_done(turn_id, task_reply, model=None)
        found = await self._knowledge.search(text) if self._knowledge.available else KnowledgeResult()
        direct = found.direct
        if direct is not None:
            writer.write(direct.text)
            return self._done(turn_id, "faq", extra={"sources": [{"id": direct.id, "title": direct.title}]})
        if self._model is None:
            if not self._knowledge.available:
                raise UpstreamNotConfigured(
                    "no model is configured: set KEFU_LLM_API_KEY (and KEFU_LLM_BASE_URL / KEFU_LLM_MODEL)"
                )
            return self._degraded(turn_id, found, writer)
        try:
            return await self._from_model(turn, text, history, found, writer, tasks if session_id else None)
        except UpstreamError as exc:
            if writer.text_parts:
                raise  # the user already saw part of this answer: never swap in another one
            self._metrics.upstream_errors.labels(provider=self._model.name, code=exc.code).inc()
            log.warning("answer_degraded", turn_id=turn_id, code=exc.code, error=exc.message)
            return self._degraded(turn_id, found, writer)

    async def _from_model(
        self,
        turn: TurnRef,
        text: str,
        history: list[ContextMessage],
        found: KnowledgeResult,
        writer: DeltaWriter,
        tasks: Tasks | None,
    ) -> Outcome:
        assert self._model is not None
        turn_id = turn.turn_id
        passages = [h for h in found.hits if found.confidence != "low"]
        system = self._system_prompt
        if passages:
            system += GROUNDING + "\n".join(f"[{i + 1}] {h.title}\n{h.text}" for i, h in enumerate(passages))
        messages = build_messages(system, history, text, token_budget=self._token_budget)
        functions = tuple(tasks.functions()) if tasks is not None else ()
        request = ChatRequest(messages=messages, user=turn.user_id, tools=functions)
        source = "kb" if passages else "llm"
        refs = tuple((h.id, h.title) for h in passages)
        key = None
        if self._shared is not None and not history:
            key = self._shared.key(text, f"{self._version}|{self._knowledge.version}")
        if key is not None:
            assert self._shared is not None
            cached = await self._shared.cached(key)
            if cached is not None:
                writer.write(cached.text)
                return self._done(turn_id, cached.source, model=cached.model, extra=_refs(cached.sources, True))
            model = self._model
            flight, leader = self._shared.join(key, lambda: model.stream(request), source=source, sources=refs)
            async for piece in flight.follow():
                writer.write(piece)
            # The upstream call (its chunks and tokens) is accounted to the turn that started it, once.
            usage, finish = (flight.usage, flight.finish) if leader else (None, flight.finish)
            chunks = len(flight.pieces) if leader else 0
        else:
            usage, finish, chunks = await self._stream(request, writer)
        self._metrics.upstream_chunks.inc(chunks)
        assert finish is not None  # ChatModel guarantees a Finish or an exception
        model_name = finish.model or self._model.model
        if finish.tool_calls:
            task_reply = await tasks.start_from_model(turn, text, finish.tool_calls) if tasks is not None else None
            if task_reply is not None:
                writer.write(("\n\n" if writer.text_parts else "") + task_reply.text)
                return self._flow_done(turn_id, task_reply, model=model_name, usage=usage)
            if not writer.text_parts:  # a call to nothing we know, and no text: say so instead of nothing
                writer.write(self._texts.apology)
                return self._done(turn_id, "fallback", extra={"handoff_offered": True}, model=model_name)
        done = ev.done_event(
            turn_id,
            finish_reason=finish.reason,
            source=source,
            model=model_name,
            usage=usage.as_dict() if usage else None,
            extra=_refs(refs, False),
        )
        # "length" / "content_filter" end the stream cleanly, but the answer is not whole.
        status: MessageStatus = "complete" if finish.reason in ("stop", "tool_calls") else "interrupted"
        return Outcome(status, done, source=source, model=model_name, usage=usage)

    async def _stream(self, request: ChatRequest, writer: DeltaWriter) -> tuple[Usage | None, Finish | None, int]:
        assert self._model is not None
        usage: Usage | None = None
        finish: Finish | None = None
        chunks = 0
        async for event in self._model.stream(request):
            if isinstance(event, TextDelta):
                writer.write(event.text)
                chunks += 1
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, Finish):
                finish = event
        return usage, finish, chunks

    def _degraded(self, turn_id: str, found: KnowledgeResult, writer: DeltaWriter) -> Outcome:
        """No model can answer: the best the knowledge base has, else an apology that offers a human."""
        if found.direct is not None:
            hit = found.direct
            writer.write(hit.text)
            return self._done(turn_id, "fallback", extra={"sources": [{"id": hit.id, "title": hit.title}]})
        if found.confidence == "medium" and found.suggestions:
            suggestions = list(found.suggestions[:3])
            writer.write(self._texts.suggest_intro + "\n".join(f"- {q}" for q in suggestions))
            return self._done(turn_id, "fallback", extra={"suggestions": suggestions})
        writer.write(self._texts.apology)
        return self._done(turn_id, "fallback", extra={"handoff_offered": True})

    def _flow_done(self, turn_id: str, reply: TaskReply, *, model: str | None, usage: Usage | None = None) -> Outcome:
        done = ev.done_event(
            turn_id,
            finish_reason="stop",
            source="flow",
            model=model,
            usage=usage.as_dict() if usage else None,
            extra=reply.extra,
        )
        return Outcome("complete", done, source="flow", model=model, usage=usage)

    def _done(
        self,
        turn_id: str,
        source: str,
        *,
        extra: dict[str, Any] | None,
        model: str | None = None,
    ) -> Outcome:
        done = ev.done_event(turn_id, finish_reason="stop", source=source, model=model, usage=None, extra=extra)
        return Outcome("complete", done, source=source, model=model)


def _refs(refs: tuple[tuple[str, str], ...], cached: bool) -> dict[str, Any] | None:
    extra: dict[str, Any] = {}
    if refs:
        extra["sources"] = [{"id": i, "title": t} for i, t in refs]
    if cached:
        extra["cached"] = True
    return extra or None
