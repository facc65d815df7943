"""Loading flow files: what careless authors get wrong is reported with file and line; good files still load."""

from __future__ import annotations

import textwrap
from pathlib import Path

from kefu.content.problems import Problem, Problems
from kefu.flows.model import FlowSet
from kefu.flows.spec import load_flows
from kefu.text.lexicon import Lexicon
from tests.flows.support import RISKS

GOOD = """\
name: {name}
description: {{zh: 查询订单, en: Order lookup}}
triggers:
  examples: [查订单]
slots:
  order_id:
    type: order_id
    prompt: 请提供订单号
steps:
  - collect: order_id
  - call: get_order
    args: {{order_id: "{{slots.order_id}}"}}
  - end: 订单状态：{{result.data.status_text}}
"""


def write(bot: Path, name: str, body: str) -> Path:
    folder = bot / "flows"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def load(bot: Path) -> tuple[FlowSet, Problems]:
    problems = Problems()
    return load_flows(bot, problems, RISKS, lexicon=Lexicon.build()), problems


def only_error(problems: Problems) -> Problem:
    assert len(problems.errors) == 1, problems.report()
    return problems.errors[0]


def test_good_flow_loads_without_problems(tmp_path: Path) -> None:
    write(tmp_path, "lookup.yaml", GOOD.format(name="lookup"))
    flows, problems = load(tmp_path)
    assert not problems.items, problems.report()
    assert flows.names() == ["lookup"] and len(flows) == 1


def test_unknown_step_kind_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", GOOD.format(name="bad").replace("  - end:", "  - finish:"))
    flows, problems = load(tmp_path)
    error = only_error(problems)
    assert (error.file, error.line) == (path, 13) and "exactly one kind" in error.message and "finish" in error.message
    assert len(flows) == 0


def test_collect_of_undeclared_slot(tmp_path: Path) -> None:
    write(tmp_path, "bad.yaml", GOOD.format(name="bad").replace("  - collect: order_id", "  - collect: phone"))
    _, problems = load(tmp_path)
    error = only_error(problems)
    assert error.line == 10 and "undeclared slot 'phone'" in error.message


def test_unknown_tool_names_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, "bad.yaml", GOOD.format(name="bad").replace("call: get_order", "call: get_orders"))
    _, problems = load(tmp_path)
    error = only_error(problems)
    assert error.line == 11 and "unknown tool 'get_orders'" in error.message and "get_order," in error.message


def test_template_naming_an_unknown_slot(tmp_path: Path) -> None:
    write(tmp_path, "bad.yaml", GOOD.format(name="bad").replace("{result.data.status_text}", "{slots.order}"))
    _, problems = load(tmp_path)
    error = only_error(problems)
    assert error.line == 13 and "undeclared slot 'order'" in error.message


def test_missing_chinese_text(tmp_path: Path) -> None:
    write(
        tmp_path, "bad.yaml", GOOD.format(name="bad").replace("prompt: 请提供订单号", "prompt:\n      en: Order number")
    )
    _, problems = load(tmp_path)
    error = only_error(problems)
    assert error.line == 8 and "Chinese" in error.message


def test_duplicate_flow_names_are_reported_on_the_second_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD.format(name="lookup"))
    second = write(tmp_path, "b.yaml", GOOD.format(name="lookup"))
    flows, problems = load(tmp_path)
    error = only_error(problems)
    assert (error.file, error.line) == (second, 1) and "duplicate flow name 'lookup'" in error.message
    assert flows.names() == ["lookup"]


def test_branch_target_that_does_not_exist(tmp_path: Path) -> None:
    body = GOOD.format(name="bad").replace(
        "  - end:",
        "  - branch:\n      - when: {var: result.ok, equals: false}\n        goto: nowhere\n    else: done\n"
        "  - label: done\n    end:",
    )
    write(tmp_path, "bad.yaml", body)
    _, problems = load(tmp_path)
    error = only_error(problems)
    assert error.line == 15 and "goto 'nowhere'" in error.message


def test_condition_on_unknown_saved_result(tmp_path: Path) -> None:
    body = GOOD.format(name="bad").replace(
        "  - end:",
        "  - branch:\n      - when: {var: steps.verify.data.ok, equals: true}\n        goto: x\n  - label: x\n    end:",
    )
    write(tmp_path, "bad.yaml", body)
    _, problems = load(tmp_path)
    error = only_error(problems)
    assert error.line == 14 and "save_as 'verify'" in error.message


def test_write_tool_without_confirmation(tmp_path: Path) -> None:
    body = GOOD.format(name="bad").replace("call: get_order", "call: create_return")
    write(tmp_path, "bad.yaml", body)
    _, problems = load(tmp_path)
    error = only_error(problems)
    assert error.line == 11 and "confirm" in error.message


def test_write_tool_with_confirm_text_or_step_is_fine(tmp_path: Path) -> None:
    inline = GOOD.format(name="inline").replace("call: get_order\n", "call: create_return\n    confirm: 确认提交吗？\n")
    step = GOOD.format(name="step").replace("  - call: get_order", "  - confirm: 确认提交吗？\n  - call: create_return")
    write(tmp_path, "inline.yaml", inline)
    write(tmp_path, "step.yaml", step)
    flows, problems = load(tmp_path)
    assert not problems.errors, problems.report()
    assert sorted(flows.names()) == ["inline", "step"]


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    write(tmp_path, "broken.yaml", "name: broken\nsteps:\n  - say: [unclosed\n  - end: x\n")
    _, problems = load(tmp_path)
    error = only_error(problems)
    assert error.line is not None and error.line >= 3 and "invalid YAML" in error.message


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "dup.yaml", GOOD.format(name="dup") + "name: again\n")
    _, problems = load(tmp_path)
    error = only_error(problems)
    assert error.line == 14 and "duplicate key 'name'" in error.message


def test_bad_slot_definitions(tmp_path: Path) -> None:
    body = GOOD.format(name="bad").replace(
        "    prompt: 请提供订单号\n",
        "    prompt: 请提供订单号\n    pattern: '[unclosed'\n    colour: red\n"
        "  reason:\n    type: choice\n    prompt: 原因？\n  when:\n    type: time\n    prompt: 何时？\n",
    )
    write(tmp_path, "bad.yaml", body)
    _, problems = load(tmp_path)
    found = {(p.line, p.message.split(":")[0]) for p in problems.errors}
    assert found == {
        (9, "invalid regular expression"),
        (10, "unknown slot key 'colour'"),
        (11, "a choice slot needs a non-empty list of options"),
        (
            15,
            "slot type must be one of text, number, choice, phone, phone_last4, order_id, date, free_text, address"
            " (got 'time')",
        ),
    }


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    body = GOOD.format(name="bad").replace("  - collect: order_id", "  - collect: order_id\n    colour: x")
    write(tmp_path, "bad.yaml", body + "flavour: x\n")
    _, problems = load(tmp_path)
    messages = sorted((p.line, p.message) for p in problems.errors)
    assert [line for line, _ in messages] == [11, 15]
    assert "unknown key 'colour' in a collect step" in messages[0][1]
    assert "unknown key 'flavour'" in messages[1][1]


def test_duplicate_labels_are_errors(tmp_path: Path) -> None:
    body = GOOD.format(name="bad").replace("  - collect: order_id", "  - collect: order_id\n    label: a")
    write(tmp_path, "bad.yaml", body.replace("  - end:", "  - label: a\n    end:"))
    _, problems = load(tmp_path)
    error = only_error(problems)
    assert error.line == 14 and "duplicate label 'a' (also on step 1)" in error.message


def test_one_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", GOOD.format(name="good"))
    write(tmp_path, "bad.yaml", "- just\n- a list\n")
    flows, problems = load(tmp_path)
    assert flows.names() == ["good"] and len(problems.errors) == 1


def test_never_collected_slot_is_a_warning(tmp_path: Path) -> None:
    body = GOOD.format(name="warn").replace("steps:", "  spare:\n    type: free_text\n    prompt: 备注？\nsteps:")
    write(tmp_path, "warn.yaml", body)
    flows, problems = load(tmp_path)
    assert not problems.errors and len(problems.items) == 1 and problems.items[0].line == 9
    assert flows.names() == ["warn"]


def test_demo_flows_have_english_for_every_text(demo_flows: FlowSet) -> None:
    for flow in demo_flows.flows.values():
        assert flow.description.en, flow.name
        for slot in flow.slots.values():
            assert slot.prompt.en and (slot.reprompt is None or slot.reprompt.en), (flow.name, slot.name)
            assert all(o.label.en for o in slot.options), (flow.name, slot.name)
        for step in flow.steps:
            assert step.text is None or step.text.en, (flow.name, step.line)
