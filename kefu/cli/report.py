"""``kefu report``: the numbers for the shop team over a date range (docs/report.md)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from kefu.config import Settings
from kefu.errors import KefuError
from kefu.kb.factory import open_knowledge_base
from kefu.obs.logging import configure_logging
from kefu.report.period import parse_period
from kefu.report.service import MAX_TOP, open_reports
from kefu.runtime import open_bot
from kefu.store.migrate import upgrade_database_sync

out = Console(highlight=False)


async def _build(settings: Settings, since: str | None, until: str | None, tz: str | None, top: int) -> dict[str, Any]:
    period = parse_period(since, until, tz)
    bot = await asyncio.to_thread(open_bot, settings)
    kb = await open_knowledge_base(settings, sync_bot=False)
    reports = open_reports(settings, knowledge=lambda: kb, texts=lambda: bot.texts)
    try:
        return await reports.report(period, top=top)
    finally:
        await reports.aclose()
        await kb.aclose()
        await bot.aclose()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(section, name, value) lines: the CSV form and the table's content."""
    c, h, a, s = report["conversations"], report["handoffs"], report["answers"], report["csat"]
    rows = [
        ("conversations", "total", str(c["total"])),
        ("conversations", "deflected", str(c["deflected"])),
        ("conversations", "deflection_rate", _pct(c["deflection_rate"])),
        ("conversations", "deflected_without_fallback", str(c["deflected_without_fallback"])),
        ("conversations", "handed_off", str(c["handed_off"])),
    ]
    rows += [("per_day", d["date"], f"{d['conversations']} ({d['handed_off']} handed off)") for d in c["per_day"]]
    rows += [("handoff_reason", k, str(v)) for k, v in h["by_reason"].items()]
    rows += [("answer_source", k, str(v)) for k, v in a["by_source"].items()]
    rows += [("fallback_kind", k, str(v)) for k, v in a["fallback_kinds"].items()]
    rows += [
        ("csat", "average", "-" if s["average"] is None else str(s["average"])),
        ("csat", "rated", str(s["rated"])),
    ]
    cost = report["cost"]
    if cost is None:
        rows.append(("cost", "ledger", "missing (no usage ledger in this database)"))
    else:
        for line in cost["by_currency"]:
            rows.append(("cost", f"total {line['currency']}", str(line["total"])))
            rows.append(("cost", f"per_conversation {line['currency']}", str(line["per_conversation"])))
    for g in report["unanswered"]["groups"]:
        faq = g["nearest_faq"]
        near = f" | nearest FAQ: {faq['question']} ({faq['score']})" if faq else ""
        rows.append(("unanswered", g["question"], f"{g['count']} × {' / '.join(g['examples'])}{near}"))
    return rows


def report(
    since: Annotated[str | None, typer.Option(help="First day (ISO date, included). Default: yesterday.")] = None,
    until: Annotated[str | None, typer.Option(help="Last day (ISO date, included). Default: --since.")] = None,
    tz: Annotated[str, typer.Option(help="Time zone the days are counted in (IANA name).")] = "UTC",
    output: Annotated[Literal["table", "json", "csv"], typer.Option("--format", help="table | json | csv")] = "table",
    top: Annotated[int, typer.Option(min=0, max=MAX_TOP, help="Groups of unanswered questions to list.")] = 10,
) -> None:
    """Conversations, deflection, handoffs by reason, answers by source, CSAT, cost and the top unanswered
    questions of the conversations that started in the range (KEFU_DATABASE_URL, KEFU_BOT_DIR).

    Example: kefu report --since 2026-12-01 --until 2026-12-07 --tz Asia/Shanghai --top 20
    """
    settings = Settings()
    configure_logging("warning")
    try:
        upgrade_database_sync(settings.database_url)
        data = asyncio.run(_build(settings, since, until, tz, top))
    except KefuError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2 if exc.status == 422 else 1) from exc
    if output == "json":
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    rows = _rows(data)
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["section", "name", "value"])
        writer.writerows(rows)
        typer.echo(buffer.getvalue(), nl=False)
        return
    period = data["period"]
    table = Table(title=f"kefu report {period['since']} … {period['until']} ({period['tz']})")
    for name in ("section", "name", "value"):
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    out.print(table)
