"""Decide where a turn's answer comes from and produce it: FAQ, model (grounded in passages), or degraded.

Order: a running task flow, or one the text clearly asks for, answers first (``flow``). Then a confident FAQ
match answers directly (``faq``, no model call). Otherwise the model answers (and may start a flow by calling
it as a function), grounded in retrieved passages when there are any (``kb``) or not (``llm``). When no model
can answer before the first token (not configured, every upstream down, retries exhausted), the knowledge base
answers what it can and the rest gets an apology that offers a human (``fallback``) — never an empty bubble.
After the first token, a broken upstream is an error: the answer is not silently replaced.
"""

from __future__ import annotations

import json

from kefu.bot.texts import CannedTexts
from kefu.engine.ending import Ending
from kefu.engine.events import DoneEvent, FlowStatus, SourceRef
from kefu.engine.flow_step import FlowAnswer, FlowStep, TurnRef
from kefu.engine.history import build_messages
from kefu.engine.people import REQUEST_HUMAN, People, handed_over, request_human_spec
from kefu.engine.sharing import SharedAnswers
from kefu.engine.writer import DeltaWriter
from kefu.errors import UpstreamError, UpstreamNotConfigured
from kefu.kb.knowledge import Knowledge, KnowledgeResult
from kefu.llm.base import ChatModel, ChatRequest, Finish, TextDelta, Usage
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.store.base import ContextMessage, MessageStatus

log = get_logger("kefu.answer")

GROUNDING = (
    "\n\n以下是知识库中与用户问题相关的资料。只根据这些资料回答；资料里没有的内容，请如实说不知道，并可建议转人工客服。\n"
    "Answer only from the reference material below; if it does not contain the answer, say you don't know.\n"
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
        flow_step: FlowStep | None = None,
        people: People | None = None,
    ) -> None:
        self._people = people
        self._model = model
        self._knowledge = knowledge
        self._metrics = metrics
        self._token_budget = token_budget
        self._shared = shared
        self.use_bot(system_prompt=system_prompt, texts=texts, flow_step=flow_step, content_version=content_version)

    def use_bot(
        self, *, system_prompt: str, texts: CannedTexts | None, flow_step: FlowStep | None, content_version: str
    ) -> None:
        """Switch to (re)loaded bot content; turns already running keep what they started with."""
        self._system_prompt = system_prompt
        self._texts = texts or CannedTexts()
        self._flow_step = flow_step
        # Answers are shared only between turns that would send the model the very same request.
        model = self._model
        self._version = f"{content_version}|{model.name if model else ''}|{model.model if model else ''}"

    @property
    def people(self) -> People | None:
        """The people step (None: no handoffs to people in this process)."""
        return self._people

    @property
    def flow_step(self) -> FlowStep | None:
        """The flow router in use (None for a bot without flows)."""
        return self._flow_step

    async def answer(self, turn: TurnRef, text: str, history: list[ContextMessage], writer: DeltaWriter) -> Ending:
        """Answer ``text``; raises only for errors that should end the turn with an ``error`` event."""
        flow_step = self._flow_step
        turn_id = turn.turn_id
        people = self._people
        if people is not None and people.frustrated(text):
            return await self._hand_over(turn, text, history, writer, reason_code="frustration", reason=text)
        if flow_step is not None:
            flow_answer = await flow_step.continue_or_route(turn, text, fresh_context=not history)
            if flow_answer is not None:
                return await self._flow_done(turn, text, history, flow_answer, writer, model=None)
        found = await self._knowledge.search(text) if self._knowledge.available else KnowledgeResult()
        direct = found.direct
        if direct is not None:
            writer.write(direct.text)
            return self._done(turn_id, "faq", sources=(SourceRef(direct.id, direct.title),))
        if self._model is None:
            if not self._knowledge.available:
                raise UpstreamNotConfigured(
                    "no model is configured: set KEFU_LLM_API_KEY (and KEFU_LLM_BASE_URL / KEFU_LLM_MODEL)"
                )
            return await self._degraded(turn, text, history, found, writer)
        try:
            return await self._from_model(turn, text, history, found, writer, flow_step)
        except UpstreamError as exc:
            if writer.text_parts:
                raise  # the user already saw part of this answer: never swap in another one
            self._metrics.upstream_errors.labels(provider=self._model.name, code=exc.code).inc()
            log.warning("answer_degraded", turn_id=turn_id, code=exc.code, error=exc.message)
            return await self._degraded(turn, text, history, found, writer)

    async def _from_model(
        self,
        turn: TurnRef,
        text: str,
        history: list[ContextMessage],
        found: KnowledgeResult,
        writer: DeltaWriter,
        flow_step: FlowStep | None,
    ) -> Ending:
        assert self._model is not None
        turn_id = turn.turn_id
        passages = [h for h in found.hits if found.confidence != "low"]
        system = self._system_prompt
        if passages:
            system += GROUNDING + "\n".join(f"[{i + 1}] {h.title}\n{h.text}" for i, h in enumerate(passages))
        messages = build_messages(system, history, text, token_budget=self._token_budget)
        functions = tuple(flow_step.functions()) if flow_step is not None else ()
        if self._people is not None:
            functions += (request_human_spec(),)
        request = ChatRequest(messages=messages, user=turn.user_id, tools=functions)
        source = "kb" if passages else "llm"
        refs = tuple(SourceRef(h.id, h.title) for h in passages)
        key = None
        if self._shared is not None and not history:
            key = self._shared.key(text, f"{self._version}|{self._knowledge.version}")
        if key is not None:
            assert self._shared is not None
            cached = await self._shared.cached(key)
            if cached is not None:
                writer.write(cached.text)
                return self._done(
                    turn_id, cached.source, model=cached.model, sources=_refs(cached.sources), cached=True
                )
            model = self._model
            pairs = tuple((r.id, r.title) for r in refs)
            flight, leader = self._shared.join(key, lambda: model.stream(request), source=source, sources=pairs)
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
            asked = next((c for c in finish.tool_calls if c.name == REQUEST_HUMAN), None)
            if asked is not None and self._people is not None:
                reason = _reason_argument(asked.arguments) or text
                return await self._hand_over(
                    turn, text, history, writer, reason_code="model", reason=reason, model=model_name, usage=usage
                )
            flow_answer = (
                await flow_step.start_from_model(turn, text, finish.tool_calls) if flow_step is not None else None
            )
            if flow_answer is not None:
                if writer.text_parts:
                    writer.write("\n\n")
                return await self._flow_done(turn, text, history, flow_answer, writer, model=model_name, usage=usage)
            if not writer.text_parts:  # a call to nothing we know, and no text: say so instead of nothing
                return await self._apology(turn, text, history, writer, model=model_name)
        done = DoneEvent(
            turn_id,
            finish_reason=finish.reason,
            source=source,
            model=model_name,
            usage=usage.as_dict() if usage else None,
            sources=refs,
        )
        # "length" / "content_filter" end the stream cleanly, but the answer is not whole.
        status: MessageStatus = "complete" if finish.reason in ("stop", "tool_calls") else "interrupted"
        return Ending(status, done, source=source, model=model_name, usage=usage)

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

    async def _degraded(
        self,
        turn: TurnRef,
        text: str,
        history: list[ContextMessage],
        found: KnowledgeResult,
        writer: DeltaWriter,
    ) -> Ending:
        """No model can answer: the best the knowledge base has, else an apology that offers a human."""
        turn_id = turn.turn_id
        if found.direct is not None:
            hit = found.direct
            writer.write(hit.text)
            return self._done(turn_id, "fallback", sources=(SourceRef(hit.id, hit.title),))
        if found.confidence == "medium" and found.suggestions:
            suggestions = list(found.suggestions[:3])
            writer.write(self._texts.suggest_intro + "\n".join(f"- {q}" for q in suggestions))
            return self._done(turn_id, "fallback", suggestions=tuple(suggestions))
        return await self._apology(turn, text, history, writer)

    async def _apology(
        self,
        turn: TurnRef,
        text: str,
        history: list[ContextMessage],
        writer: DeltaWriter,
        *,
        model: str | None = None,
    ) -> Ending:
        """The bot cannot help: an apology that offers a person, or, after too many in a row, the person."""
        people = self._people
        if people is not None and people.failed_before(history, self._texts):
            return await self._hand_over(turn, text, history, writer, reason_code="repeated_failure", reason=text)
        writer.write(self._texts.apology)
        return self._done(turn.turn_id, "fallback", handoff_offered=True, model=model)

    async def _hand_over(
        self,
        turn: TurnRef,
        text: str,
        history: list[ContextMessage],
        writer: DeltaWriter,
        *,
        reason_code: str,
        reason: str,
        model: str | None = None,
        usage: Usage | None = None,
    ) -> Ending:
        """Queue the conversation for a person and tell the shopper where they stand."""
        assert self._people is not None
        if turn.session_row is not None:
            await turn.session_row  # the handoff references the session's row
        ticket = await self._people.hand_over(
            session_id=turn.session_id,
            turn_id=turn.turn_id,
            reason_code=reason_code,
            reason=reason,
            history=history,
            text=text,
        )
        writer.write(("\n\n" if writer.text_parts else "") + ticket.notice)
        done, event = handed_over(
            turn.turn_id, ticket, source="human", model=model, usage=usage.as_dict() if usage else None
        )
        return Ending("complete", done, source="human", model=model, usage=usage, before=(event,))

    async def _flow_done(
        self,
        turn: TurnRef,
        text: str,
        history: list[ContextMessage],
        reply: FlowAnswer,
        writer: DeltaWriter,
        *,
        model: str | None,
        usage: Usage | None = None,
    ) -> Ending:
        writer.write(reply.text)
        flow = FlowStatus(reply.flow, reply.status)
        if reply.handoff is not None and self._people is not None:
            ticket = await self._people.hand_over(
                session_id=turn.session_id,
                turn_id=turn.turn_id,
                reason_code="shopper_asked" if reply.handoff.reason == "user_request" else "flow",
                reason=reply.handoff.reason,
                history=history,
                text=text,
                flow=reply.flow,
                slots=reply.handoff.slots,
            )
            if ticket.offline:
                writer.write("\n" + ticket.notice)  # the flow's wording cannot know nobody is there right now
            done, event = handed_over(
                turn.turn_id, ticket, source="flow", flow=flow, model=model, usage=usage.as_dict() if usage else None
            )
            return Ending("complete", done, source="flow", model=model, usage=usage, before=(event,))
        done = DoneEvent(
            turn.turn_id,
            finish_reason="stop",
            source="flow",
            model=model,
            usage=usage.as_dict() if usage else None,
            flow=flow,
            handoff_offered=reply.handoff_offered,
        )
        return Ending("complete", done, source="flow", model=model, usage=usage)

    def _done(
        self,
        turn_id: str,
        source: str,
        *,
        model: str | None = None,
        sources: tuple[SourceRef, ...] = (),
        suggestions: tuple[str, ...] = (),
        cached: bool = False,
        handoff_offered: bool = False,
    ) -> Ending:
        done = DoneEvent(
            turn_id,
            finish_reason="stop",
            source=source,
            model=model,
            sources=sources,
            suggestions=suggestions,
            cached=cached,
            handoff_offered=handoff_offered,
        )
        return Ending("complete", done, source=source, model=model)


def _refs(pairs: tuple[tuple[str, str], ...]) -> tuple[SourceRef, ...]:
    return tuple(SourceRef(i, t) for i, t in pairs)


def _reason_argument(arguments: str) -> str | None:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return None
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    return reason.strip()[:500] if isinstance(reason, str) and reason.strip() else None
