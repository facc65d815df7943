"""Loading tool files: every problem is reported with file and line, and bad tools are left out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kefu.bot.functions import model_functions
from kefu.content.problems import Problems
from kefu.tools.registry import ToolRegistry

GOOD = """\
    name: get_item
    description: one item
    risk: read
    url: "{env.API}/items/{item_id}"
    parameters:
      type: object
      properties:
        item_id: {type: string}
      required: [item_id]
"""


def load(bot_dir: Path, **env: str) -> tuple[ToolRegistry, Problems]:
    problems = Problems()
    return ToolRegistry.load(bot_dir, problems, env=env or {"API": "http://x"}), problems


def only(problems: Problems) -> tuple[str, int | None, str]:
    assert len(problems.items) == 1, problems.report()
    p = problems.items[0]
    return p.file.name, p.line, p.message


def test_load_good_tool_has_no_problems(bot: Callable[..., Path]) -> None:
    registry, problems = load(bot(items=GOOD))
    assert problems.items == []
    assert registry.has("get_item") and registry.risk("get_item") == "read"
    assert registry.specs()[0].retries == 1  # reads retry once by default


def test_load_list_under_tools_key(bot: Callable[..., Path]) -> None:
    text = """\
        tools:
          - name: get_item
            description: one item
            risk: read
            url: "http://x/items"
          - name: second
            description: d
            risk: write
            method: POST
            url: http://x/y
    """
    registry, problems = load(bot(many=text))
    assert problems.items == [], problems.report()
    assert registry.risks() == {"get_item": "read", "second": "write"}
    assert registry.specs()[1].retries == 0 and registry.specs()[1].line == 6


def test_load_bad_yaml_reports_line(bot: Callable[..., Path]) -> None:
    registry, problems = load(bot(bad="name: x\nrisk: read\nurl: [oops\ndescription: d\n"))
    name, line, message = only(problems)
    assert (name, line) == ("bad.yaml", 4) and "not valid YAML" in message
    assert registry.specs() == []


def test_load_missing_risk_reports_tool_line(bot: Callable[..., Path]) -> None:
    registry, problems = load(bot(norisk="# comment\nname: x\ndescription: d\nurl: http://x/y\n"))
    assert only(problems)[:2] == ("norisk.yaml", 2)
    assert "'risk' is required" in problems.items[0].message
    assert not registry.has("x")


def test_load_literal_secret_header_is_an_error(bot: Callable[..., Path]) -> None:
    text = "name: x\ndescription: d\nrisk: read\nurl: http://x/y\nheaders:\n  Accept: application/json\n"
    text += "  Authorization: Bearer sk-live-123\n"
    registry, problems = load(bot(secret=text))
    name, line, message = only(problems)
    assert line == 7 and "secrets come from the environment" in message
    assert not registry.has("x")


def test_load_env_secret_header_is_fine(bot: Callable[..., Path]) -> None:
    text = "name: x\ndescription: d\nrisk: read\nurl: http://x/y\nheaders:\n  X-Api-Key: '{env.KEY}'\n"
    registry, problems = load(bot(secret=text), KEY="k")
    assert problems.items == [] and registry.has("x")


def test_load_retries_on_write_is_an_error(bot: Callable[..., Path]) -> None:
    text = "name: x\ndescription: d\nrisk: write\nmethod: POST\nurl: http://x/y\nretries: 2\n"
    registry, problems = load(bot(w=text))
    name, line, message = only(problems)
    assert line == 6 and "never retried" in message
    assert not registry.has("x")


def test_load_unknown_bind_source_is_an_error(bot: Callable[..., Path]) -> None:
    text = "name: x\ndescription: d\nrisk: read\nurl: http://x/{uid}\nbind:\n  uid: user.phone\n"
    _, problems = load(bot(b=text))
    name, line, message = only(problems)
    assert line == 6 and "user.id or session.id" in message


def test_load_unknown_placeholder_is_an_error(bot: Callable[..., Path]) -> None:
    text = "name: x\ndescription: d\nrisk: read\nurl: http://x/{order}\n"
    _, problems = load(bot(p=text))
    assert only(problems)[1] == 4 and "{order} is not a parameter" in problems.items[0].message


def test_load_invalid_json_schema_is_an_error(bot: Callable[..., Path]) -> None:
    text = "name: x\ndescription: d\nrisk: read\nurl: http://x/y\nparameters:\n  type: object\n  properties: 3\n"
    _, problems = load(bot(s=text))
    assert only(problems)[1] == 5 and "not a valid JSON schema" in problems.items[0].message


def test_load_duplicate_name_is_an_error(bot: Callable[..., Path]) -> None:
    registry, problems = load(bot(a=GOOD, b=GOOD))
    name, line, message = only(problems)
    assert name == "b.yaml" and "already defined in" in message and "a.yaml:1" in message
    assert len(registry.specs()) == 1


def test_load_unset_env_warns_once_per_variable(bot: Callable[..., Path]) -> None:
    registry, problems = load(bot(a=GOOD, b=GOOD.replace("get_item", "other")), UNRELATED="1")
    assert problems.errors == []
    assert [p.message for p in problems.items] == ["API is not set: calls to get_item, other fail until it is"]
    assert registry.has("get_item")


def test_load_unimportable_python_function_is_an_error(bot: Callable[..., Path]) -> None:
    text = "name: x\ndescription: d\nrisk: read\nkind: python\nfunction: tests.tools.pytools:NOT_CALLABLE\n"
    text2 = "name: y\ndescription: d\nrisk: read\nkind: python\nfunction: tests.tools.nowhere:f\n"
    registry, problems = load(bot(x=text, y=text2))
    assert [(p.file.name, p.line) for p in problems.errors] == [("x.yaml", 1), ("y.yaml", 1)]
    assert "not callable" in problems.errors[0].message and "nowhere" in problems.errors[1].message
    assert registry.specs() == []


def test_load_unknown_key_is_a_warning(bot: Callable[..., Path]) -> None:
    registry, problems = load(bot(k=GOOD + "    timout: 3\n"))
    name, line, message = only(problems)
    assert line == 10 and "unknown key 'timout'" in message and problems.errors == []
    assert registry.has("get_item")


def test_model_functions_hide_bound_parameters(bot: Callable[..., Path]) -> None:
    text = """\
        name: mine
        description: my orders
        risk: read
        url: "http://x/orders/{order_id}"
        query: {uid: "{user_id}"}
        parameters:
          type: object
          properties:
            order_id: {type: string}
            user_id: {type: string}
          required: [order_id, user_id]
        bind: {user_id: user.id}
    """
    registry, problems = load(bot(m=text))
    assert problems.items == [], problems.report()
    (fn,) = model_functions(registry)
    assert fn.name == "mine" and fn.description == "my orders"
    assert fn.parameters["properties"] == {"order_id": {"type": "string"}}
    assert fn.parameters["required"] == ["order_id"]
    assert "user_id" in registry.specs()[0].parameters["properties"]  # the definition itself is untouched
