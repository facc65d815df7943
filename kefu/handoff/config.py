"""``handoff.yaml`` in the bot directory: business hours, queue timeout, trigger phrases, notices, canned replies,
webhooks (docs/handoff.md). Every key is optional; a bot without the file gets the defaults below."""

from __future__ import annotations

import re
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kefu.content.problems import Problems

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hours(_Strict):
    """When people answer. A missing day kind means closed that day; no ``hours`` at all means always open."""

    timezone: str = "Asia/Shanghai"
    weekdays: str | None = None  # "09:00-22:00", Monday to Friday
    weekends: str | None = None  # Saturday and Sunday

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("weekdays", "weekends")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_range(value)
        return value

    def open_at(self, moment: datetime) -> bool:
        """Whether people answer at ``moment`` (timezone-aware)."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        spec = self.weekends if local.weekday() >= 5 else self.weekdays
        if spec is None:
            return False
        start, end = _parse_range(spec)
        now = local.time()
        return start <= now < end if start <= end else (now >= start or now < end)

    def describe(self) -> str:
        """The hours as the shopper is told them."""
        parts = []
        if self.weekdays:
            parts.append(f"周一至周五 {self.weekdays.strip()}")
        if self.weekends:
            parts.append(f"周六日 {self.weekends.strip()}")
        return "，".join(parts) or "暂无人工服务时间"


def _parse_range(spec: str) -> tuple[time, time]:
    match = _RANGE.match(spec)
    if match is None:
        raise ValueError(f"hours must look like '09:00-22:00', not {spec!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"not a time range: {spec!r}")
    return time(h1, m1), (time(23, 59, 59) if h2 == 24 else time(h2, m2))


class HandoffTexts(_Strict):
    """Notices the shopper sees. ``{position}``, ``{hours}``, ``{agent}`` are filled in."""

    queued: str = "已为您转接人工客服，您前面还有 {position} 位，请稍候。"
    offline: str = (
        "现在不是人工客服的工作时间（{hours}），您可以直接留言，客服上班后会第一时间回复您；"
        "回复“回到机器人”可继续问智能助手。"
    )
    no_agent: str = "暂时没有客服在线，您可以直接留言，客服会尽快回复您；回复“回到机器人”可继续问智能助手。"
    joined: str = "客服 {agent} 已接入，正在为您服务。"
    transferred: str = "已为您转接给客服 {agent}。"
    back_to_bot: str = "已回到智能助手，有需要可以随时再转人工。"
    closed: str = "本次人工服务已结束，欢迎为我们的服务打分。"
    timeout: str = "暂时没有客服可以接入，已回到智能助手。您也可以稍后再试“转人工”。"
    waiting: str = "您的消息已转给人工客服，请稍候。"


class CannedReply(_Strict):
    """A reply agents insert from the desk."""

    title: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=4000)


class WebhookSpec(_Strict):
    """An outgoing webhook target (the secret is read from the environment variable ``secret_env``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str = Field(pattern=r"^https?://")
    events: tuple[str, ...] = (
        "handoff.requested",
        "conversation.assigned",
        "message.created",
        "conversation.closed",
        "csat.received",
    )
    secret_env: str | None = None
    format: Literal["kefu", "wecom"] = "kefu"


class HandoffConfig(_Strict):
    """The people side of a bot."""

    hours: Hours | None = None
    queue_timeout: float = Field(default=600.0, ge=0)  # 0: never
    on_timeout: Literal["bot", "keep"] = "bot"
    repeated_failures: int = Field(default=2, ge=0)
    # Frustration, not requests: "转人工" and its kin are the ``human`` flow's, with its own wording.
    frustration: tuple[str, ...] = ("机器人听不懂", "听不懂人话", "你听不懂", "垃圾机器人", "人工智障", "我要投诉")
    back_to_bot: tuple[str, ...] = ("回到机器人", "返回机器人", "回机器人", "back to bot", "back to the bot")
    texts: HandoffTexts = HandoffTexts()
    canned: tuple[CannedReply, ...] = ()
    webhooks: tuple[WebhookSpec, ...] = ()

    def open_at(self, moment: datetime) -> bool:
        """Whether people answer at ``moment``."""
        return self.hours is None or self.hours.open_at(moment)

    def hours_text(self) -> str:
        """The business hours as the shopper is told them."""
        return self.hours.describe() if self.hours is not None else ""


def load_handoff_config(path: Path, problems: Problems) -> HandoffConfig:
    """Read ``handoff.yaml`` (defaults when absent); problems are reported, and the defaults used, when invalid."""
    if not path.exists():
        return HandoffConfig()
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.error(path, f"not valid YAML: {getattr(exc, 'problem', exc)}", mark.line + 1 if mark else None)
        return HandoffConfig()
    if not isinstance(data, dict):
        problems.error(path, "must be a mapping (hours, queue_timeout, texts, canned, webhooks, …)")
        return HandoffConfig()
    try:
        return HandoffConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            problems.error(path, f"{where}: {error['msg']}")
        return HandoffConfig()
