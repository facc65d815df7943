"""Fixtures for flow tests: the demo shop's flows loaded once, a fresh stub tool caller per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.content.problems import Problems
from kefu.flows.interpreter import FlowInterpreter
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
def demo_interpreter(demo_flows: FlowSet) -> FlowInterpreter:
    """An interpreter over the demo flows (for routing: the index is built once)."""
    return FlowInterpreter(demo_flows, StubTools())


@pytest.fixture
def tools() -> StubTools:
    """A fresh stub of the demo shop's tools."""
    return StubTools()


@pytest.fixture
def interpreter(demo_flows: FlowSet, tools: StubTools) -> FlowInterpreter:
    """An interpreter over the demo flows calling ``tools``."""
    return FlowInterpreter(demo_flows, tools)


@pytest.fixture
def chat(interpreter: FlowInterpreter) -> Chat:
    """A Chinese conversation with the demo flows."""
    return Chat(interpreter)
