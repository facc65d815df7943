"""The flow and tool YAML examples in docs/flows.md and docs/tools.md load with the project's own loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from kefu.bot.loader import load_bot
from kefu.config import DEMO_BOT_DIR
from tests.docs.blocks import ROOT, Block, all_blocks

# Examples that are bot files say so on their first line (`# <bot>/flows/x.yaml`); reference sheets don't.
EXAMPLES = [
    b
    for b in all_blocks({"yaml"}, [ROOT / "docs" / "flows.md", ROOT / "docs" / "tools.md"])
    if b.code.lstrip().startswith(("# <bot>/flows/", "# <bot>/tools/"))
]
# The flow example calls a write tool the demo shop does not have.
INVOICE_TOOL = """\
name: create_invoice
description: 开发票
risk: write
method: POST
url: https://shop.example/invoices
body: {order_id: "{order_id}", title: "{title}"}
parameters:
  type: object
  properties: {order_id: {type: string}, title: {type: string}}
  required: [order_id, title]
"""


def test_the_docs_have_flow_examples() -> None:
    assert any("/flows/" in b.code.splitlines()[0] for b in EXAMPLES)


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda b: b.id)
def test_example_is_valid_yaml_and_loads_in_the_demo_bot(block: Block, tmp_path: Path) -> None:
    assert isinstance(yaml.safe_load(block.code), dict), f"{block.id}: not a YAML mapping"
    bot_dir = tmp_path / "bot"
    shutil.copytree(DEMO_BOT_DIR, bot_dir, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    relative = block.code.lstrip().splitlines()[0].removeprefix("# <bot>/").strip()
    (bot_dir / relative).write_text(block.code, encoding="utf-8")
    (bot_dir / "tools" / "zz_invoice.yaml").write_text(INVOICE_TOOL, encoding="utf-8")
    env = {"KEFU_DEMO_SHOP_URL": "http://127.0.0.1:8000/demo/shop-api", "KEFU_DEMO_SHOP_TOKEN": "t"}
    bot, problems = load_bot(bot_dir, env=env, allow_hosts=[])
    assert bot is not None, f"{block.id}:\n" + "\n".join(str(p) for p in problems.items)
    assert not problems.errors


TOOL_EXAMPLES = [b for b in all_blocks({"yaml"}, [ROOT / "docs" / "tools.md"]) if "\nrisk:" in "\n" + b.code]
PYTHON_TOOL = next(b for b in all_blocks({"python"}, [ROOT / "docs" / "tools.md"]) if "# myshop/tools.py" in b.code)


def test_the_docs_have_tool_examples() -> None:
    assert len(TOOL_EXAMPLES) >= 2


# A bot with no flows has an empty trigger index: bm25s warns about its mean length, which is irrelevant here.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("block", TOOL_EXAMPLES, ids=lambda b: b.id)
def test_tool_example_loads_as_a_bot_tool(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The Python tool example names myshop.tools:stock_level, which the docs' Python block defines.
    (tmp_path / "myshop").mkdir()
    (tmp_path / "myshop" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "myshop" / "tools.py").write_text(PYTHON_TOOL.code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    bot_dir = tmp_path / "bot"
    (bot_dir / "tools").mkdir(parents=True)
    (bot_dir / "tools" / "example.yaml").write_text(block.code, encoding="utf-8")
    env = {"SHOP_API": "https://shop.example/api", "SHOP_TOKEN": "t"}
    bot, problems = load_bot(bot_dir, env=env, allow_hosts=[])
    assert bot is not None, f"{block.id}:\n" + "\n".join(str(p) for p in problems.items)
    assert not problems.items, f"{block.id}:\n" + "\n".join(str(p) for p in problems.items)
    assert len(bot.tools.risks()) == 1
