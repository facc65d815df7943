"""``GET /v1/admin/report`` (server API keys only), which the report page (``/desk/report``, served by
:mod:`kefu.api.web`) shows.

The page is public like ``/desk``; everything it shows comes from the API, with the API key the user pastes into
it (kept in the tab's ``sessionStorage``). Its "add FAQ entry" form posts to ``/v1/admin/kb/entries``.
See docs/report.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from kefu.api.deps import require_api_key
from kefu.errors import NotFound
from kefu.report.period import parse_period
from kefu.report.service import MAX_TOP, Reports

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_api_key)])

DateParam = Annotated[str | None, Query(max_length=32, description="ISO date, e.g. 2026-12-01 (included)")]


async def get_reports(request: Request) -> Reports:
    """The process's report builder (``kefu.app`` puts it on ``app.state.reports``)."""
    found: Reports | None = getattr(request.app.state, "reports", None)
    if found is None:
        raise NotFound("reports are not available in this process")
    return found


ReportsDep = Annotated[Reports, Depends(get_reports)]


@router.get("/report", summary="Numbers for the shop team over a date range")
async def report(
    reports: ReportsDep,
    since: DateParam = None,
    until: DateParam = None,
    tz: Annotated[str | None, Query(max_length=64, description="IANA time zone the days are counted in")] = None,
    top: Annotated[int, Query(ge=0, le=MAX_TOP, description="groups of unanswered questions to list")] = 10,
) -> dict[str, Any]:
    """Conversations per day, deflection, handoffs by reason, answers by source, CSAT, cost (when the usage
    ledger exists) and the most-asked unanswered questions. Default range: yesterday (UTC). 422 for a bad date."""
    return await reports.report(parse_period(since, until, tz), top=top)
