"""The model path: ``kefu test`` with KEFU_LLM_* pointing at the mock upstream, scripted per message."""

from __future__ import annotations

from pathlib import Path

from tests.convtest.support import HERE, run_kefu_test
from tests.support import MockLLM

MODEL_TESTS = HERE / "model"


def _env(mock: MockLLM) -> dict[str, str]:
    return {"KEFU_LLM_BASE_URL": mock.url + "/v1", "KEFU_LLM_API_KEY": "sk-test", "KEFU_LLM_MODEL": "mock-chat"}


def test_model_path_flows_started_by_the_model_pass(fresh_mock: MockLLM, tmp_path: Path) -> None:
    before = fresh_mock.stats()["requests"]
    report = run_kefu_test(MODEL_TESTS, "--json", cwd=tmp_path, env=_env(fresh_mock))
    assert report.failed() == [], report.explain()
    assert report.returncode == 0
    first = report.steps[0]
    assert first["conversation"] == "模型启动查物流流程并抽取订单号" and first["passed"] is True
    assert fresh_mock.stats()["requests"] - before >= 4  # the model was asked: the rules did not route these


def test_model_path_wrong_model_expectations_fail(fresh_mock: MockLLM, tmp_path: Path) -> None:
    path = tmp_path / "model-wrong.yaml"
    path.write_text(
        "conversations:\n"
        "  - name: the model answers, no flow\n"
        "    turns:\n"
        '      - user: \'你好呀，今天天气怎么样啊，随便聊聊天吧朋友 [[mock:{"text": "晴天。"}]]\'\n'
        "        expect: {source: flow, reply_contains: 下雨}\n",
        encoding="utf-8",
    )
    report = run_kefu_test(path, "--json", cwd=tmp_path, env=_env(fresh_mock))
    assert report.returncode == 1
    (step,) = report.steps
    assert step["failures"] == ["reply does not contain '下雨'", "source: expected 'flow', got 'llm'"]
    assert step["reply"] == "晴天。"
