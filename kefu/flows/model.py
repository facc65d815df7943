"""The parsed, validated form of flow files: slots, steps and flows (built by :mod:`kefu.flows.spec`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from kefu.flows.texts import Text
from kefu.text.lexicon import Lexicon
from kefu.tools.base import Risk

SlotType: TypeAlias = Literal[
    "text", "number", "choice", "phone", "phone_last4", "order_id", "date", "free_text", "address"
]
SLOT_TYPES: tuple[SlotType, ...] = (
    *("text", "number", "choice", "phone", "phone_last4", "order_id", "date", "free_text", "address"),
)
StepKind: TypeAlias = Literal["collect", "call", "branch", "say", "set", "confirm", "reask", "handoff", "end"]
STEP_KINDS: tuple[StepKind, ...] = ("collect", "call", "branch", "say", "set", "confirm", "reask", "handoff", "end")
Op: TypeAlias = Literal["equals", "not_equals", "in", "exists"]
OPS: tuple[Op, ...] = ("equals", "not_equals", "in", "exists")
DEFAULT_ORDER_ID = r"[A-Za-z]{0,4}\d{6,20}"
# Route score a flow needs to start from a message; see FlowSet.threshold.
DEFAULT_THRESHOLD = 0.55


@dataclass(frozen=True, slots=True)
class Option:
    """One answer of a ``choice`` slot: the stored value, its label and words that also select it."""

    value: str
    label: Text
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SlotSpec:
    """A typed piece of information a flow collects."""

    name: str
    type: SlotType
    prompt: Text
    reprompt: Text | None = None
    description: str = ""
    pattern: str | None = None  # order_id only; default DEFAULT_ORDER_ID
    minimum: float | None = None  # number
    maximum: float | None = None
    integer: bool = False
    options: tuple[Option, ...] = ()  # choice
    min_length: int | None = None  # text
    max_length: int | None = None
    max_attempts: int = 3
    aliases: tuple[str, ...] = ()  # words naming the slot in a correction ("手机号错了")
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """``{var: <path>, <op>: <value>}`` — compared against the flow's scope, never evaluated as code."""

    var: str
    op: Op
    value: Any = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One arm of a branch: when the condition holds, go to the label."""

    when: Condition
    goto: str


@dataclass(frozen=True, slots=True)
class Step:
    """One step. Which fields matter depends on ``kind`` (see docs/flows.md)."""

    kind: StepKind
    line: int | None = None
    label: str | None = None
    goto: str | None = None
    slot: str | None = None  # collect, reask
    tool: str | None = None  # call
    args: Mapping[str, Any] = field(default_factory=dict)
    save_as: str | None = None
    text: Text | None = None  # say, end, confirm, reask, handoff; a call's confirmation question
    rules: tuple[Rule, ...] = ()  # branch
    otherwise: str | None = None  # branch ``else``
    values: Mapping[str, Any] = field(default_factory=dict)  # set
    reason: str | None = None  # handoff
    offer_human: bool = False  # end: the reply offers a human (FlowReply.handoff_offered)


@dataclass(frozen=True, slots=True)
class Flow:
    """One flow file, validated."""

    name: str
    description: Text
    examples: tuple[str, ...]
    keywords: tuple[str, ...]
    slots: Mapping[str, SlotSpec]
    steps: tuple[Step, ...]
    labels: Mapping[str, int]
    risks: Mapping[str, Risk]
    fingerprint: str
    exclude: tuple[str, ...] = ()  # substrings that stop a message from routing here ("怎么申请" = a how-to question)
    file: Path | None = None
    line: int | None = None  # of the ``name`` key
    label: Text | None = None  # a short name for a button ("查物流"); None: the first example
    interrupts: bool = False  # its triggers may take over while another flow runs ("转人工" mid-task)

    def collect_index(self, slot: str) -> int | None:
        """Index of the first step collecting ``slot``."""
        return next((i for i, s in enumerate(self.steps) if s.kind == "collect" and s.slot == slot), None)


@dataclass(frozen=True, slots=True)
class FlowSet:
    """All flows of a bot, the lexicon routing analyses text with, and the route threshold.

    ``threshold``: a message starts a flow when its route score (term coverage of the best trigger example in
    [0, 1], or 1.0 for a keyword hit) reaches it. 0.55 sits between the demo's colloquial phrasings of a task
    (≥ 0.6) and FAQ questions sharing a word with a trigger (≤ 0.45); tests/flows/test_routing.py pins both.
    """

    flows: Mapping[str, Flow]
    lexicon: Lexicon = field(default_factory=Lexicon.build)
    threshold: float = DEFAULT_THRESHOLD

    def get(self, name: str) -> Flow | None:
        """The flow called ``name``."""
        return self.flows.get(name)

    def names(self) -> list[str]:
        """The flows' names, in load order."""
        return list(self.flows)

    def __len__(self) -> int:
        return len(self.flows)
