"""Fixtures for flow tests: the demo shop's flows loaded once, a fresh stub tool caller per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.content.problems import Problems
from kefu.flows.engine import FlowEngine
from kefu.flows.model import FlowSet
from kefu.flows.spec import load_flows
from tests.flows.support import RISKS, Chat, StubTools

DEMO = Path(__file__).resolve().parents[2] / "kefu" / "demo"


@pytest.fixture(scope="session")
def demo_flows() -> FlowSet:
    """The demo shop's flows (kefu/demo/flows), checked against the demo tools' names and risks."""
    problems = Problems()
    flows = load_flows(DEMO, problems, RISKS)
    assert not problems.items, problems.report()
    return flows


@pytest.fixture(scope="session")
def demo_engine(demo_flows: FlowSet) -> FlowEngine:
    """An engine over the demo flows (for routing: the index is built once)."""
    return FlowEngine(demo_flows, StubTools())


@pytest.fixture
def tools() -> StubTools:
    """A fresh stub of the demo shop's tools."""
    return StubTools()


@pytest.fixture
def engine(demo_flows: FlowSet, tools: StubTools) -> FlowEngine:
    """An engine over the demo flows calling ``tools``."""
    return FlowEngine(demo_flows, tools)


@pytest.fixture
def chat(engine: FlowEngine) -> Chat:
    """A Chinese conversation with the demo flows."""
    return Chat(engine)
