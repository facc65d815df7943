"""Prometheus metrics. One registry per app so tests and several apps in one process don't collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class Metrics:
    """The metrics kefu exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter(
            "kefu_turns_total",
            "Finished turns by outcome (complete/interrupted/failed) and answer source.",
            ["outcome", "source"],
            registry=self.registry,
        )
        self.ttft = Histogram(
            "kefu_time_to_first_token_seconds",
            "Time from accepting a message to the first answer text written to the turn log.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.turn_duration = Histogram(
            "kefu_turn_duration_seconds",
            "Time from accepting a message to the end of the turn.",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "kefu_upstream_errors_total",
            "Model provider errors by error code.",
            ["provider", "code"],
            registry=self.registry,
        )
        self.moderation_hits = Counter(
            "kefu_moderation_hits_total",
            "Messages the moderation lexicon (or the external endpoint) hit, by category, action "
            "(block/mask/flag) and where (input: the shopper's message, output: the model's answer).",
            ["category", "action", "where"],
            registry=self.registry,
        )
        self.moderation_external = Counter(
            "kefu_moderation_external_total",
            "Answers of the external moderation endpoint by result (allow/flag/mask/block, or error: failed, timed "
            "out or unreadable, so its on_error applied).",
            ["result"],
            registry=self.registry,
        )
        self.moderation_external_seconds = Histogram(
            "kefu_moderation_external_seconds",
            "Time a shopper's message waited for the external moderation endpoint.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # --- people in the loop ---
        self.handoffs = Counter(
            "kefu_handoffs_total",
            "Conversations handed to a person, by reason (shopper_asked, flow, button, model, repeated_failure, "
            "frustration).",
            ["reason"],
            registry=self.registry,
        )
        self.relayed = Counter(
            "kefu_relayed_messages_total",
            "Shopper messages relayed to people instead of answered by the bot, by state (queued/agent).",
            ["state"],
            registry=self.registry,
        )
        self.csat = Histogram(
            "kefu_csat",
            "Shoppers' ratings (1-5) of conversations with a person.",
            buckets=(1, 2, 3, 4, 5),
            registry=self.registry,
        )
        self.webhook_emit_seconds = Histogram(
            "kefu_webhook_emit_seconds",
            "Time to queue a webhook notification (sending happens in the background).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "kefu_webhook_deliveries_total",
            "Webhook delivery attempts by event and result (delivered, retry, failed).",
            ["event", "result"],
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "kefu_active_streams",
            "Open SSE responses (readers of turn logs).",
            registry=self.registry,
        )
        self.active_turns = Gauge(
            "kefu_active_turns",
            "Turns running in this process.",
            registry=self.registry,
        )
        self.upstream_chunks = Counter(
            "kefu_upstream_text_chunks_total",
            "Answer text chunks received from model providers.",
            registry=self.registry,
        )

        self.answer_cache = Counter(
            "kefu_answer_cache_total",
            "Shared-answer lookups: hit (replayed from cache), miss, joined (shared an in-flight upstream call).",
            ["result"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "kefu_rate_limited_total",
            "Requests refused by a rate limit, by which limit.",
            ["scope"],
            registry=self.registry,
        )

        # --- resilience (kefu.llm.resilience) ---
        self.upstream_breaker_state = Gauge(
            "kefu_upstream_breaker_state",
            "Circuit breaker state per upstream as this process last saw it: 0 closed, 1 half-open, 2 open.",
            ["upstream"],
            registry=self.registry,
        )
        self.upstream_retries = Counter(
            "kefu_upstream_retries_total",
            "Retries on the same upstream before the first token, by the error that caused them.",
            ["upstream", "code"],
            registry=self.registry,
        )
        self.upstream_failovers = Counter(
            "kefu_upstream_failovers_total",
            "Turns that gave up on an upstream before the first token (moving to the next route), by error code.",
            ["upstream", "code"],
            registry=self.registry,
        )
        self.upstream_short_circuits = Counter(
            "kefu_upstream_short_circuits_total",
            "Attempts skipped because the upstream's circuit breaker was open.",
            ["upstream"],
            registry=self.registry,
        )
        self.upstream_insufficient_balance = Counter(
            "kefu_upstream_insufficient_balance_total",
            "HTTP 402 answers (provider balance exhausted) per upstream.",
            ["upstream"],
            registry=self.registry,
        )
        self.upstream_queue_length = Gauge(
            "kefu_upstream_queue_length",
            "Requests waiting for an upstream concurrency slot (an autoscaling signal).",
            ["upstream"],
            registry=self.registry,
        )
        self.upstream_in_flight = Gauge(
            "kefu_upstream_in_flight",
            "Requests holding an upstream concurrency slot (open upstream streams).",
            ["upstream"],
            registry=self.registry,
        )
        self.upstream_concurrency_limit = Gauge(
            "kefu_upstream_concurrency_limit",
            "Current adaptive concurrency limit per upstream.",
            ["upstream"],
            registry=self.registry,
        )
        self.upstream_queue_wait = Histogram(
            "kefu_upstream_queue_wait_seconds",
            "Time spent waiting for an upstream concurrency slot.",
            ["upstream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # --- end resilience ---

        # --- flows (kefu.flows, kefu.engine.flow_step) ---
        self.flow_turns = Counter(
            "kefu_flow_turns_total",
            "Turns answered by a task flow, by flow and the flow's status after the turn (running or its outcome).",
            ["flow", "status"],
            registry=self.registry,
        )
        self.flow_slot_reads = Counter(
            "kefu_flow_slot_reads_total",
            "Slot answers the flow's rules could not read, sent to the model, by result: value (then validated by the "
            "slot's rules), none, malformed, error, timeout, over_budget.",
            ["result"],
            registry=self.registry,
        )
        # --- end flows ---

        # --- tools (kefu.tools) ---
        self.tool_calls = Counter(
            "kefu_tool_calls_total",
            "Business tool calls by tool and outcome (ok or the error code).",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.tool_seconds = Histogram(
            "kefu_tool_seconds",
            "Time a business tool call took, retries included.",
            ["tool"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # --- end tools ---

        # --- usage and cost (kefu.engine.usage; docs/cost.md) ---
        self.llm_tokens = Counter(
            "kefu_llm_tokens",
            "Model tokens by model and kind: prompt_cache_hit, prompt_cache_miss, completion (the answer, reasoning "
            "excluded) and reasoning; estimated from characters when the provider sent no usage.",
            ["model", "kind"],
            registry=self.registry,
        )
        self.llm_cost = Counter(
            "kefu_llm_cost",
            "Cost of model calls in the currency of the prices file (models without a price are not counted).",
            ["model", "currency"],
            registry=self.registry,
        )
        self.llm_usage_estimated = Counter(
            "kefu_llm_usage_estimated",
            "Model calls whose tokens were estimated because the provider sent no usage (cut off, or not supported).",
            ["model"],
            registry=self.registry,
        )
        self.budget_exceeded = Gauge(
            "kefu_budget_exceeded",
            "1 while today's model spend (UTC day, all replicas) has reached KEFU_DAILY_BUDGET: turns answer from "
            "the knowledge base only.",
            registry=self.registry,
        )
        # --- end usage and cost ---

    def render(self) -> bytes:
        """The exposition text for ``/metrics``."""
        return generate_latest(self.registry)
