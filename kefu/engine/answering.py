"""Decide where a turn's answer comes from and produce it: FAQ, model (grounded in passages), or degraded.

Order: a running task flow, or one the text clearly asks for, answers first (``flow``). A message that is only
small talk ("在吗", "谢谢", "你是机器人吗") goes to the model when there is one, else gets the bot's own reply
(``smalltalk``); a complaint about the bot ("答非所问") gets the apology that offers a person. Then a confident FAQ
match answers directly (``faq``, no model call). Otherwise the model answers (and may start a flow by calling
it as a function), grounded in retrieved passages when there are any (``kb``) or not (``llm``). When no model
can answer before the first token (not configured, every upstream down, retries exhausted), the knowledge base
answers what it can and the rest gets an apology that offers a human (``fallback``) — never an empty bubble.
After the first token, a broken upstream is an error: the answer is not silently replaced.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from kefu.bot.texts import CannedTexts
from kefu.engine.ending import Ending
from kefu.engine.events import DoneEvent, FlowStatus, SourceRef
from kefu.engine.flow_step import FlowAnswer, FlowStep, TurnRef
from kefu.engine.history import build_messages
from kefu.engine.output import ModelOutput
from kefu.engine.people import REQUEST_HUMAN, People, handed_over, request_human_spec
from kefu.engine.sharing import SharedAnswers
from kefu.engine.usage import MeteredCall, UsageMeter
from kefu.engine.writer import DeltaWriter
from kefu.errors import UpstreamError, UpstreamNotConfigured
from kefu.flows.texts import Lang, conversation_lang
from kefu.kb.knowledge import Knowledge, KnowledgeResult
from kefu.llm.base import ChatModel, ChatRequest, Finish, ModelEvent, TextDelta, ToolCall, Usage
from kefu.moderation import ExternalModeration, Moderator, Verdict
from kefu.obs import tracing
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.pii import ALL_KINDS, PiiKind, Pseudonyms
from kefu.store.base import ContextMessage, MessageStatus
from kefu.text.smalltalk import SmallTalk, small_talk

log = get_logger("kefu.answer")

# The conversation's language when it is not the bot's default (kefu.flows.texts.conversation_lang decides it).
LANGUAGE_HINTS = {
    "en": "\n\nThe shopper writes in English: answer in English.",
    "zh": "\n\n用户使用中文交流：请用中文回答。",
}
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
        pii_kinds: tuple[PiiKind, ...] = ALL_KINDS,
        moderator: Moderator | None = None,
        external_moderation: ExternalModeration | None = None,
        usage: UsageMeter | None = None,
    ) -> None:
        self._people = people
        self._usage = usage
        self._model = model
        self._knowledge = knowledge
        self._metrics = metrics
        self._token_budget = token_budget
        self._shared = shared
        self._pii_kinds = pii_kinds
        self.use_bot(
            system_prompt=system_prompt,
            texts=texts,
            flow_step=flow_step,
            content_version=content_version,
            moderator=moderator,
            external_moderation=external_moderation,
        )

    def use_bot(
        self,
        *,
        system_prompt: str,
        texts: CannedTexts | None,
        flow_step: FlowStep | None,
        content_version: str,
        moderator: Moderator | None = None,
        external_moderation: ExternalModeration | None = None,
    ) -> None:
        """Switch to (re)loaded bot content; turns already running keep what they started with."""
        self._system_prompt = system_prompt
        self._texts = texts or CannedTexts()
        self._flow_step = flow_step
        self._moderator = moderator if moderator is not None and not moderator.empty else None
        self._external = external_moderation
        # Answers are shared only between turns that would send the model the very same request.
        model = self._model
        self._version = f"{content_version}|{model.name if model else ''}|{model.model if model else ''}"

    @property
    def people(self) -> People | None:
        """The people step (None: no handoffs to people in this process)."""
        return self._people

    def screen(self, text: str) -> Verdict | None:
        """The lexicon's verdict on a shopper's message (None: nothing hit), before anything else sees it."""
        if self._moderator is None:
            return None
        verdict = self._moderator.check(text, where="input")
        if verdict.action == "allow":
            return None
        self._count(verdict, "input")
        return verdict

    async def screen_external(self, text: str) -> Verdict | None:
        """The external moderation endpoint's verdict on a shopper's message, if one is configured."""
        if self._external is None:
            return None
        verdict = await self._external.check(text, where="input")
        if verdict.action == "allow":
            return None
        self._count(verdict, "input")
        return verdict

    def blocked(self, turn_id: str, verdict: Verdict, writer: DeltaWriter) -> Ending:
        """The polite canned reply to a message the lexicon blocks; the model never sees the message."""
        writer.write(verdict.reply or self._texts.apology)
        done = DoneEvent(turn_id, finish_reason="content_filter", source="moderation")
        return Ending("complete", done, source="moderation", moderation=verdict.mark)

    def _count(self, verdict: Verdict, where: str) -> None:
        for category, action in dict.fromkeys((h.category, h.action) for h in verdict.hits):
            self._metrics.moderation_hits.labels(category=category, action=action, where=where).inc()

    @property
    def flow_step(self) -> FlowStep | None:
        """The flow router in use (None for a bot without flows)."""
        return self._flow_step

    async def answer(self, turn: TurnRef, text: str, history: list[ContextMessage], writer: DeltaWriter) -> Ending:
        """Answer ``text``; raises only for errors that should end the turn with an ``error`` event."""
        flow_step = self._flow_step
        earlier = [m.content for m in history if m.role == "user"]
        turn = replace(turn, lang=conversation_lang(text, earlier, self._texts.default_lang))
        turn_id = turn.turn_id
        people = self._people
        if people is not None and people.frustrated(text):
            return await self._hand_over(turn, text, history, writer, reason_code="frustration", reason=text)
        if flow_step is not None:
            with tracing.span("kefu.flow.step") as step:
                flow_answer = await flow_step.continue_or_route(turn, text, fresh_context=not history)
                if flow_answer is not None:
                    step.set(flow=flow_answer.flow, status=flow_answer.status)
            if flow_answer is not None:
                return await self._flow_done(turn, text, history, flow_answer, writer, model=None)
        chat = small_talk(text)
        if chat == "frustration":
            return await self._apology(turn, text, history, writer)  # offers a person; hands over when it repeats
        if chat is not None and self._model is None:
            return self._small_talk(turn, chat, writer)
        with tracing.span("kefu.kb.search") as search:
            if chat is not None or not self._knowledge.available:
                found = KnowledgeResult()  # "谢谢" is for the model, not for the FAQ's nearest entry
            else:
                found = await self._knowledge.search(text, lang=turn.lang)
            search.set(hits=len(found.hits), confidence=found.confidence)
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
        usage = self._usage
        if usage is not None and await usage.over_budget():
            return await self._degraded(turn, text, history, found, writer)  # the day's model budget is spent
        metered = usage.call(turn_id, turn.session_id, self._model.model) if usage is not None else None
        source: str | None = None
        try:
            ending = await self._from_model(turn, text, history, found, writer, flow_step, metered)
            source = ending.source
            return ending
        except UpstreamError as exc:
            if writer.text_parts:
                raise  # the user already saw part of this answer: never swap in another one
            self._metrics.upstream_errors.labels(provider=self._model.name, code=exc.code).inc()
            log.warning("answer_degraded", turn_id=turn_id, code=exc.code, error=exc.message)
            return await self._degraded(turn, text, history, found, writer)
        finally:
            if metered is not None:
                await metered.answered(source)  # recorded once its stream has ended too

    async def _from_model(
        self,
        turn: TurnRef,
        text: str,
        history: list[ContextMessage],
        found: KnowledgeResult,
        writer: DeltaWriter,
        flow_step: FlowStep | None,
        metered: MeteredCall | None = None,
    ) -> Ending:
        assert self._model is not None
        turn_id = turn.turn_id
        passages = [h for h in found.hits if found.confidence != "low"]
        system = self._system_prompt
        if turn.lang != self._texts.default_lang:
            system += LANGUAGE_HINTS.get(turn.lang, "")  # the persona is written in the bot's own language
        if passages:
            system += GROUNDING + "\n".join(f"[{i + 1}] {h.title}\n{h.text}" for i, h in enumerate(passages))
        # The provider never sees the shopper's numbers: placeholders go out, the shopper's own values come back.
        names = Pseudonyms(self._pii_kinds) if self._pii_kinds else None
        sent_history = [ContextMessage(m.role, names.mask(m.content)) for m in history] if names else history
        sent_text = names.mask(text) if names else text
        messages = build_messages(system, sent_history, sent_text, token_budget=self._token_budget)
        out = ModelOutput(writer, names, self._moderator)
        functions = tuple(flow_step.functions()) if flow_step is not None else ()
        if self._people is not None:
            functions += (request_human_spec(),)
        request = ChatRequest(messages=messages, user=turn.user_id, tools=functions)
        source = "kb" if passages else "llm"
        if metered is not None:
            metered.source, metered.request = source, request
        refs = tuple(SourceRef(h.id, h.title) for h in passages)
        key = None
        if self._shared is not None and not history:
            key = self._shared.key(text, f"{self._version}|{self._knowledge.version}")
        if key is not None:
            assert self._shared is not None
            cached = await self._shared.cached(key)
            if cached is not None:
                out.write(cached.text)
                out.close()
                if out.blocked is None:
                    return self._done(
                        turn_id,
                        cached.source,
                        model=cached.model,
                        sources=_refs(cached.sources),
                        cached=True,
                        moderation=out.mark,
                    )
                return self._withheld(
                    turn_id, out, writer, source=cached.source, model=cached.model, usage=None, lang=turn.lang
                )
            model = self._model
            pairs = tuple((r.id, r.title) for r in refs)
            with tracing.span("kefu.llm.call", provider=model.name, model=model.model, shared=True) as call:
                flight, leader = self._shared.join(
                    key, lambda: _metered(metered, model.stream(request)), source=source, sources=pairs
                )
                call.set(leader=leader)
                async for piece in flight.follow():
                    out.write(piece)
                    if out.blocked is not None:
                        break  # the flight goes on for the others; their own check withholds it from them too
                _traced_result(call, flight.usage, flight.finish)
            # The upstream call (its chunks and tokens) is accounted to the turn that started it, once.
            usage, finish = (flight.usage, flight.finish) if leader else (None, flight.finish)
            chunks = len(flight.pieces) if leader else 0
        else:
            usage, finish, chunks = await self._stream(request, out, metered)
        self._metrics.upstream_chunks.inc(chunks)
        out.close()
        for category, action in dict.fromkeys((h.category, h.action) for v in out.verdicts for h in v.hits):
            self._metrics.moderation_hits.labels(category=category, action=action, where="output").inc()
        if out.blocked is not None:
            model_name = (finish.model if finish is not None else None) or self._model.model
            return self._withheld(turn_id, out, writer, source=source, model=model_name, usage=usage, lang=turn.lang)
        assert finish is not None  # ChatModel guarantees a Finish or an exception
        model_name = finish.model or self._model.model
        tool_calls = finish.tool_calls
        if names is not None and names.active:
            # The model passes the placeholders it saw; flows and tools get the shopper's real values.
            tool_calls = tuple(ToolCall(c.id, c.name, names.restore(c.arguments)) for c in tool_calls)
        if tool_calls:
            asked = next((c for c in tool_calls if c.name == REQUEST_HUMAN), None)
            if asked is not None and self._people is not None:
                reason = _reason_argument(asked.arguments) or text
                return await self._hand_over(
                    turn,
                    text,
                    history,
                    writer,
                    reason_code="model",
                    reason=reason,
                    model=model_name,
                    usage=usage,
                )
            flow_answer = await flow_step.start_from_model(turn, text, tool_calls) if flow_step is not None else None
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
        return Ending(status, done, source=source, model=model_name, usage=usage, moderation=out.mark)

    def _withheld(
        self,
        turn_id: str,
        out: ModelOutput,
        writer: DeltaWriter,
        *,
        source: str,
        model: str | None,
        usage: Usage | None,
        lang: Lang = "zh",
    ) -> Ending:
        """The model's answer hit a blocking term: it stops where the clean text ends, then the canned reply."""
        assert out.blocked is not None
        reply = out.blocked.reply or self._texts.text("apology", lang)
        writer.write(("\n\n" if writer.text_parts else "") + reply)
        done = DoneEvent(
            turn_id,
            finish_reason="content_filter",
            source=source,
            model=model,
            usage=usage.as_dict() if usage else None,
        )
        return Ending("interrupted", done, source=source, model=model, usage=usage, moderation=out.mark)

    async def _stream(
        self, request: ChatRequest, out: ModelOutput, metered: MeteredCall | None = None
    ) -> tuple[Usage | None, Finish | None, int]:
        assert self._model is not None
        usage: Usage | None = None
        finish: Finish | None = None
        chunks = 0
        call = tracing.span("kefu.llm.call", provider=self._model.name, model=request.model or self._model.model)
        asked = time.monotonic()
        stream = _metered(metered, self._model.stream(request))
        try:
            with call:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        if not chunks:
                            call.set(ttft_ms=round((time.monotonic() - asked) * 1000, 1))
                        out.write(event.text)
                        chunks += 1
                        if out.blocked is not None:
                            break  # nothing more of this answer will be shown: stop paying for it
                    elif isinstance(event, Usage):
                        usage = event
                    elif isinstance(event, Finish):
                        finish = event
                _traced_result(call, usage, finish)
        finally:
            closing = getattr(stream, "aclose", None)
            if closing is not None:
                await closing()
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
        chat = small_talk(text)
        if chat is not None and chat != "frustration":
            return self._small_talk(turn, chat, writer)
        if found.direct is not None:
            hit = found.direct
            writer.write(hit.text)
            return self._done(turn_id, "fallback", sources=(SourceRef(hit.id, hit.title),))
        if found.confidence == "medium" and found.suggestions:
            suggestions = list(found.suggestions[:3])
            writer.write(self._texts.text("suggest_intro", turn.lang) + "\n".join(f"- {q}" for q in suggestions))
            return self._done(turn_id, "fallback", suggestions=tuple(suggestions))
        return await self._apology(turn, text, history, writer)

    def _small_talk(self, turn: TurnRef, kind: SmallTalk, writer: DeltaWriter) -> Ending:
        """A greeting, thanks, goodbye, "好的" or "are you a robot?" answered from the bot's texts (no model)."""
        writer.write(self._texts.text(f"smalltalk_{kind}", turn.lang))
        return self._done(turn.turn_id, "smalltalk")

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
        writer.write(self._texts.text("apology", turn.lang))
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
            suggestions=reply.suggestions,
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
        moderation: str | None = None,
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
        return Ending("complete", done, source=source, model=model, moderation=moderation)


def _traced_result(call: tracing.Span, usage: Usage | None, finish: Finish | None) -> None:
    call.set(
        answered_by=finish.model if finish else None,  # the model that answered (a fallback route's, after failover)
        upstream=finish.upstream if finish else None,  # the route of the chain that answered
        finish_reason=finish.reason if finish else None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
    )


def _metered(metered: MeteredCall | None, stream: AsyncIterator[ModelEvent]) -> AsyncIterator[ModelEvent]:
    return metered.watch(stream) if metered is not None else stream


def _refs(pairs: tuple[tuple[str, str], ...]) -> tuple[SourceRef, ...]:
    return tuple(SourceRef(i, t) for i, t in pairs)


def _reason_argument(arguments: str) -> str | None:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return None
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    return reason.strip()[:500] if isinstance(reason, str) and reason.strip() else None
