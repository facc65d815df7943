"""``kefu usage``: model tokens and cost from the ledger, by day, model, source or upstream (docs/cost.md).

Reads KEFU_DATABASE_URL (the same database the servers write); days are UTC.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kefu.config import Settings
from kefu.llm.prices import NANO
from kefu.obs.logging import configure_logging
from kefu.store.migrate import upgrade_database_sync
from kefu.store.sql import create_engine_for
from kefu.store.usage import UsageLedger, UsageLine

out = Console(highlight=False)


class By(StrEnum):
    day = "day"
    model = "model"
    source = "source"
    upstream = "upstream"


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


COLUMNS = (
    "calls",
    "estimated_calls",
    "prompt_cache_hit_tokens",
    "prompt_cache_miss_tokens",
    "completion_tokens",
    "reasoning_tokens",
)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        message = f"{value!r} is not a date: use YYYY-MM-DD (UTC), e.g. 2026-12-01"
        raise typer.BadParameter(message, param_hint=option) from None


def cost_text(nano: int) -> str:
    """A nano-unit amount as an exact decimal string ("0.000123")."""
    return format((Decimal(nano) / NANO).normalize(), "f")


def _row(line: UsageLine, by: str) -> dict[str, Any]:
    row: dict[str, Any] = {by: line.key, "currency": line.currency}
    row |= {name: getattr(line, name) for name in COLUMNS}
    row["cost"] = cost_text(line.cost_nano) if line.currency is not None else None
    return row


def usage(
    since: Annotated[
        str | None, typer.Option("--since", help="First day to include, YYYY-MM-DD (UTC); default: 7 days ago.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last day to include, YYYY-MM-DD (UTC).")] = None,
    by: Annotated[By, typer.Option("--by", help="Group calls by day, model, source or upstream.")] = By.day,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
) -> None:
    """Model tokens and cost per day, model, answer source or upstream, from the token ledger.

    Costs are per currency of the prices file; calls of a model without a price have no cost (currency "-").

    Examples: kefu usage · kefu usage --since 2026-12-01 --until 2026-12-06 --by model · kefu usage --format csv
    """
    first = _day(since, "--since")
    last = _day(until, "--until")
    if first is None:
        first = (last or datetime.now(UTC).date()) - timedelta(days=6)
    if last is not None and last < first:
        raise typer.BadParameter(f"--until {last} is before --since {first}", param_hint="--until")
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last, time(), UTC) + timedelta(days=1) if last is not None else None
    settings = Settings()
    configure_logging("warning")
    upgrade_database_sync(settings.database_url)

    async def run() -> list[UsageLine]:
        ledger = UsageLedger(create_engine_for(settings.database_url))
        try:
            return await ledger.report(by=by.value, since=start, until=end)
        finally:
            await ledger.aclose()

    lines = asyncio.run(run())
    rows = [_row(line, by.value) for line in lines]
    if fmt is Format.json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    elif fmt is Format.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[by.value, "currency", *COLUMNS, "cost"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        typer.echo(buffer.getvalue(), nl=False)
    else:
        _table(lines, by.value, first, last)


def _table(lines: list[UsageLine], by: str, first: date, last: date | None) -> None:
    span = f"{first} … {last or 'today'} (UTC)"
    if not lines:
        out.print(f"no model calls recorded for {span}")
        return
    table = Table(title=f"model usage by {by}, {span}")
    table.add_column(by)
    for name in ("calls", "estimated", "cache hit", "cache miss", "completion", "reasoning", "cost"):
        table.add_column(name, justify="right")
    totals: dict[str | None, list[int]] = {}
    for line in lines:
        table.add_row(
            line.key,
            *(f"{getattr(line, name):,}" for name in COLUMNS),
            _money(line.cost_nano, line.currency),
        )
        total = totals.setdefault(line.currency, [0] * (len(COLUMNS) + 1))
        for i, value in enumerate((*(getattr(line, n) for n in COLUMNS), line.cost_nano)):
            total[i] += value
    table.add_section()
    for currency, total in sorted(totals.items(), key=lambda item: item[0] or ""):
        table.add_row("total", *(f"{v:,}" for v in total[:-1]), _money(total[-1], currency), style="bold")
    out.print(table)


def _money(nano: int, currency: str | None) -> str:
    if currency is None:
        return "- (no price)"
    return f"{Decimal(nano) / NANO:,.6f} {currency}"
