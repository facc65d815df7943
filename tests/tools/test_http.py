"""HTTP tools against a real backend over loopback: templates, mapping, retries, confirmation, identity."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from kefu.content.problems import Problems
from kefu.obs.logging import configure_logging
from kefu.obs.metrics import Metrics
from kefu.tools.http import build_request
from kefu.tools.registry import ToolRegistry
from kefu.tools.spec import ToolDef
from tests.tools.backend import Backend
from tests.tools.conftest import CTX, REBINDING_NAME
from tests.tools.internal import ADDRESS as INTERNAL_ADDRESS
from tests.tools.internal import Internal

TOOLS = """\
    tools:
      - name: get_item
        description: one item
        risk: read
        url: "{env.API}/items/{item_id}"
        headers:
          Authorization: "Bearer {env.API_TOKEN}"
        query:
          owner: "{user_id}"
          color: "{color}"
        parameters:
          type: object
          properties:
            item_id: {type: string}
            color: {type: string}
          required: [item_id]
        bind: {user_id: user.id}
        response: {data: item}
      - name: make_thing
        description: create
        risk: write
        method: POST
        url: "{env.API}/things"
        parameters:
          type: object
          properties:
            name: {type: string}
            phone: {type: string}
          required: [name]
        bind: {user_id: user.id}
      - name: missing
        description: m
        risk: read
        url: "{env.API}/missing"
        response: {errors: {404: not_found}}
      - name: conflict
        description: c
        risk: write
        method: POST
        url: "{env.API}/conflict"
        body: {reason: fixed}
        response: {errors: {409: "{body.error}"}}
      - name: slow
        description: s
        risk: read
        url: "{env.API}/slow"
        timeout: 0.3
        retries: 0
      - name: flaky_read
        description: f
        risk: read
        method: GET
        url: "{env.API}/flaky"
        retries: 2
      - name: flaky_write
        description: f
        risk: write
        method: POST
        url: "{env.API}/flaky"
      - name: follow
        description: answers a redirect
        risk: read
        url: "{env.API}/redirect"
        query: {to: "{to}"}
        parameters: {type: object, properties: {to: {type: string}}, required: [to]}
        retries: 0
      - name: leaky
        description: an error body with personal data
        risk: read
        url: "{env.API}/leaky"
        retries: 0
"""


@pytest.fixture
async def tools(bot: Callable[..., Path], backend: Backend) -> AsyncIterator[ToolRegistry]:
    problems = Problems()
    env = {"API": backend.url, "API_TOKEN": "tok-123"}
    registry = ToolRegistry.load(
        bot(shop=TOOLS), problems, env=env, allow_hosts=[f"127.0.0.1:{backend.port}"], metrics=Metrics()
    )
    assert problems.items == [], problems.report()
    yield registry
    await registry.aclose()


async def test_call_get_fills_path_query_and_env_headers(tools: ToolRegistry, backend: Backend) -> None:
    result = await tools.call("get_item", {"item_id": "红 1"}, CTX)
    assert result.ok and result.status == 200 and result.elapsed_ms > 0
    assert result.data == {"id": "红 1", "query": {"owner": "u-verified"}}  # mapped to `item`, color left out
    (seen,) = backend.seen
    assert seen.path == "/items/红 1"
    assert seen.headers["authorization"] == "Bearer tok-123"


async def test_call_bound_user_id_overrides_model_value(tools: ToolRegistry, backend: Backend) -> None:
    await tools.call("get_item", {"item_id": "1", "user_id": "someone-else"}, CTX)
    assert backend.seen[0].query["owner"] == "u-verified"


async def test_call_post_default_body_is_the_arguments(tools: ToolRegistry, backend: Backend) -> None:
    args = {"name": "box", "user_id": "forged", "refund_amount": 9999}
    result = await tools.call("make_thing", args, CTX, confirmed=True)
    assert result.ok and result.status == 201
    # undeclared arguments are dropped, the bound one comes from the verified context
    assert backend.seen[0].body == {"name": "box", "user_id": "u-verified"}
    assert result.data == {"created": {"name": "box", "user_id": "u-verified"}}


async def test_call_write_without_confirmation_is_not_sent(tools: ToolRegistry, backend: Backend) -> None:
    result = await tools.call("make_thing", {"name": "box"}, CTX)
    assert (result.ok, result.error) == (False, "not_confirmed")
    assert backend.seen == [] and tools.calls == []


async def test_call_invalid_arguments_names_the_problem(tools: ToolRegistry, backend: Backend) -> None:
    result = await tools.call("get_item", {"item_id": 5}, CTX)
    assert result.error == "invalid_arguments" and "item_id" in (result.message or "")
    missing = await tools.call("get_item", {}, CTX)
    assert missing.error == "invalid_arguments" and "'item_id' is a required property" in (missing.message or "")
    assert backend.seen == []


async def test_call_404_maps_to_code_with_body_as_data(tools: ToolRegistry) -> None:
    result = await tools.call("missing", {}, CTX)
    assert (result.ok, result.error, result.status, result.data) == (False, "not_found", 404, {"error": "nope"})


async def test_call_409_maps_to_the_body_error(tools: ToolRegistry, backend: Backend) -> None:
    result = await tools.call("conflict", {}, CTX, confirmed=True)
    assert (result.error, result.status) == ("already_shipped", 409)
    assert backend.seen[0].body == {"reason": "fixed"}


async def test_call_timeout_is_reported(tools: ToolRegistry) -> None:
    result = await tools.call("slow", {}, CTX)
    assert result.error == "timeout" and result.elapsed_ms < 1500


async def test_call_read_retried_on_503_then_succeeds(tools: ToolRegistry, backend: Backend) -> None:
    backend.fail_next = 2
    result = await tools.call("flaky_read", {}, CTX)
    assert result.ok and result.data == {"fine": True}
    assert backend.paths() == ["/flaky"] * 3


async def test_call_read_gives_up_after_its_retries(tools: ToolRegistry, backend: Backend) -> None:
    backend.fail_next = 10
    result = await tools.call("flaky_read", {}, CTX)
    assert (result.error, result.status, result.data) == ("http_503", 503, {"error": "busy"})
    assert len(backend.seen) == 3


async def test_call_write_never_retried(tools: ToolRegistry, backend: Backend) -> None:
    result = await tools.call("flaky_write", {}, CTX, confirmed=True)
    assert (result.error, result.status) == ("http_503", 503)
    assert len(backend.seen) == 1


async def test_call_unknown_tool(tools: ToolRegistry) -> None:
    result = await tools.call("drop_tables", {}, CTX)
    assert (result.ok, result.error) == (False, "unknown_tool")


async def test_call_loopback_refused_without_allow_list(bot: Callable[..., Path], backend: Backend) -> None:
    registry = ToolRegistry.load(bot(shop=TOOLS), Problems(), env={"API": backend.url, "API_TOKEN": "t"})
    try:
        result = await registry.call("missing", {}, CTX)
        assert result.error == "refused" and "internal address" in (result.message or "")
        assert backend.seen == []
    finally:
        await registry.aclose()


async def test_call_unset_env_is_not_configured(bot: Callable[..., Path], backend: Backend) -> None:
    registry = ToolRegistry.load(bot(shop=TOOLS), Problems(), env={"API": backend.url})
    try:
        result = await registry.call("get_item", {"item_id": "1"}, CTX)
        assert (result.error, result.message) == ("not_configured", "set API_TOKEN")
        assert backend.seen == []
    finally:
        await registry.aclose()


async def test_call_logs_without_phone_numbers(
    bot: Callable[..., Path], backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info")
    env = {"API": backend.url, "API_TOKEN": "t"}
    registry = ToolRegistry.load(bot(shop=TOOLS), Problems(), env=env, allow_hosts=[f"127.0.0.1:{backend.port}"])
    try:
        result = await registry.call("make_thing", {"name": "x", "phone": "13912345678"}, CTX, confirmed=True)
    finally:
        await registry.aclose()
    assert result.ok and backend.seen[0].body["phone"] == "13912345678"  # the call itself carries it
    err = capsys.readouterr().err
    with capsys.disabled():  # later tests must not log into this test's (closed) capture file
        configure_logging("info")
    assert "tool_call" in err and "make_thing" in err and "elapsed_ms" in err
    assert "13912345678" not in err and "[PHONE]" in err


async def test_call_counted_in_metrics(bot: Callable[..., Path], backend: Backend) -> None:
    metrics = Metrics()
    env = {"API": backend.url, "API_TOKEN": "t"}
    allow = [f"127.0.0.1:{backend.port}"]
    registry = ToolRegistry.load(bot(shop=TOOLS), Problems(), env=env, allow_hosts=allow, metrics=metrics)
    try:
        await registry.call("get_item", {"item_id": "1"}, CTX)
        await registry.call("missing", {}, CTX)
        await registry.call("missing", {}, CTX)
        await registry.call("invented_by_model", {}, CTX)
    finally:
        await registry.aclose()

    def count(tool: str, outcome: str) -> float | None:
        return metrics.registry.get_sample_value("kefu_tool_calls_total", {"tool": tool, "outcome": outcome})

    assert count("get_item", "ok") == 1 and count("missing", "not_found") == 2
    assert count("(unknown)", "unknown_tool") == 1
    assert metrics.registry.get_sample_value("kefu_tool_seconds_count", {"tool": "missing"}) == 2


async def test_call_optional_env_header_left_out_when_unset(bot: Callable[..., Path], backend: Backend) -> None:
    text = """\
        name: opt
        description: o
        risk: read
        url: "{env.API}/items/1"
        headers: {Authorization: "Bearer {env.MAYBE_TOKEN?}", X-Trace: "t-{env.MAYBE_TOKEN?}"}
    """
    allow = [f"127.0.0.1:{backend.port}"]
    for env, expected in (({}, None), ({"MAYBE_TOKEN": "m"}, "Bearer m")):
        problems = Problems()
        registry = ToolRegistry.load(bot(opt=text), problems, env={"API": backend.url, **env}, allow_hosts=allow)
        try:
            assert problems.items == [] and (await registry.call("opt", {}, CTX)).ok
        finally:
            await registry.aclose()
        assert backend.seen[-1].headers.get("authorization") == expected


def test_build_request_encodes_arguments_in_the_path() -> None:
    tool = ToolDef(name="t", risk="read", url="{env.BASE}/orders/{order_id}", bind={"order_id": "user.id"})
    request = build_request(tool, httpx.AsyncClient(), {"order_id": "a/b?x=1#y"}, {"BASE": "https://shop.example/api"})
    assert request.url.raw_path == b"/api/orders/a%2Fb%3Fx%3D1%23y"
    assert request.url.host == "shop.example"


# --- the SSRF findings of issue 14, through the registry as flows and the model use it ---


@pytest.mark.parametrize("item_id", ["..", "../admin", "%2e%2e", "..%2Fadmin"])
async def test_call_argument_that_would_climb_the_path_is_not_sent(
    tools: ToolRegistry, backend: Backend, item_id: str
) -> None:
    result = await tools.call("get_item", {"item_id": item_id}, CTX)
    assert (result.ok, result.error) == (False, "invalid_arguments")
    assert result.message == "item_id: '.' and '..' cannot be part of a URL path"
    assert backend.seen == []


async def test_call_rebinding_name_reaches_only_the_checked_address(
    bot: Callable[..., Path], backend: Backend, internal: Internal, rebinding_dns: list[str]
) -> None:
    env = {"API": f"http://{REBINDING_NAME}:{backend.port}", "API_TOKEN": "t"}
    registry = ToolRegistry.load(bot(shop=TOOLS), Problems(), env=env, allow_hosts=[f"127.0.0.1:{backend.port}"])
    try:
        first = await registry.call("get_item", {"item_id": "1"}, CTX)
        second = await registry.call("get_item", {"item_id": "2"}, CTX)  # the kept-alive, checked connection
    finally:
        await registry.aclose()
    assert first.ok and second.ok and backend.paths() == ["/items/1", "/items/2"]
    assert rebinding_dns == [REBINDING_NAME] and internal.connections == 0


async def test_call_to_a_host_that_does_not_resolve_is_refused_and_logged_without_pii(
    bot: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info")
    env = {"API": "http://no-such-host.invalid", "API_TOKEN": "t"}
    registry = ToolRegistry.load(bot(shop=TOOLS), Problems(), env=env)
    try:
        result = await registry.call("make_thing", {"name": "x", "phone": "13912345678"}, CTX, confirmed=True)
    finally:
        await registry.aclose()
    err = capsys.readouterr().err
    with capsys.disabled():
        configure_logging("info")
    assert (result.ok, result.error, result.message) == (False, "refused", "no-such-host.invalid could not be resolved")
    assert "tool_call" in err and "refused" in err and "no-such-host.invalid could not be resolved" in err
    assert "13912345678" not in err


async def test_call_redirect_is_not_followed(tools: ToolRegistry, backend: Backend, internal: Internal) -> None:
    result = await tools.call("follow", {"to": f"http://{INTERNAL_ADDRESS}:{backend.port}/"}, CTX)
    assert (result.ok, result.error, result.status) == (False, "http_302", 302)
    assert backend.paths() == ["/redirect"] and internal.connections == 0


async def test_call_does_not_go_through_an_environment_proxy(
    bot: Callable[..., Path], backend: Backend, internal: Internal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy resolves names itself, past the guard: tool calls connect directly."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://{INTERNAL_ADDRESS}:{backend.port}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    env = {"API": backend.url, "API_TOKEN": "t"}
    registry = ToolRegistry.load(bot(shop=TOOLS), Problems(), env=env, allow_hosts=[f"127.0.0.1:{backend.port}"])
    try:
        result = await registry.call("get_item", {"item_id": "1"}, CTX)
    finally:
        await registry.aclose()
    assert result.ok and backend.paths() == ["/items/1"] and internal.connections == 0


@pytest.mark.parametrize("api", ["http://0177.0.0.1", "http://127.0.0.1", "http://[::ffff:7f00:1]", "file://"])
async def test_call_internal_or_odd_base_urls_are_refused(bot: Callable[..., Path], backend: Backend, api: str) -> None:
    registry = ToolRegistry.load(bot(shop=TOOLS), Problems(), env={"API": f"{api}:{backend.port}", "API_TOKEN": "t"})
    try:
        result = await registry.call("missing", {}, CTX)
    finally:
        await registry.aclose()
    assert (result.ok, result.error) == (False, "refused") and backend.seen == []


async def test_call_error_body_with_personal_data_is_not_logged(
    tools: ToolRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info")
    result = await tools.call("leaky", {}, CTX)
    err = capsys.readouterr().err
    with capsys.disabled():
        configure_logging("info")
    assert (result.error, result.status) == ("http_500", 500) and "tool_call" in err
    assert "13912345678" not in err and "zhang@example.com" not in err and "no order for" not in err
