"""``GET /v1/admin/report`` on a real server: API keys only, clear 422s, and the report of a real conversation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.support import KefuServer, MockLLM, token_for

KEY = {"Authorization": "Bearer test-api-key"}


@pytest.fixture
def http(shared_server: KefuServer, fresh_mock: MockLLM) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.url, timeout=30) as client:
        yield client


def test_no_credentials_is_401_and_a_shoppers_token_403(http: httpx.Client) -> None:
    assert http.get("/v1/admin/report").status_code == 401
    shopper = http.get("/v1/admin/report", headers={"Authorization": f"Bearer {token_for('u-1')}"})
    assert shopper.status_code == 403
    assert shopper.json()["error"]["code"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "since must be a date"),
        ("since=2026-12-05&until=2026-12-01", "is after until"),
        ("since=2026-12-01&tz=Nowhere/Atlantis", "unknown time zone"),
    ],
)
def test_bad_dates_are_422(http: httpx.Client, query: str, message: str) -> None:
    response = http.get(f"/v1/admin/report?{query}", headers=KEY)
    assert response.status_code == 422
    assert message in response.json()["error"]["message"]


def test_top_out_of_range_is_422(http: httpx.Client) -> None:
    assert http.get("/v1/admin/report?top=1000", headers=KEY).status_code == 422


def test_a_conversation_today_is_in_todays_report(http: httpx.Client, fresh_mock: MockLLM) -> None:
    user = {"Authorization": f"Bearer {token_for('report-user')}"}
    with http.stream("POST", "/v1/chat", json={"message": "你们周末上班吗", "session_id": None}, headers=user) as r:
        assert r.status_code == 200
        body = "".join(r.iter_text())
    assert "event: done" in body
    today = datetime.now(UTC).date().isoformat()
    report = http.get(f"/v1/admin/report?since={today}&until={today}", headers=KEY).json()
    assert report["period"]["since"] == today
    assert report["conversations"]["total"] >= 1
    assert report["answers"]["by_source"]["llm"] >= 1
    assert report["csat"]["rated"] == 0


def test_the_report_page_is_served_with_a_strict_policy(http: httpx.Client) -> None:
    page = http.get("/desk/report")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert '<script src="/report.js"' in page.text
    assert http.get("/report.js").status_code == 200
