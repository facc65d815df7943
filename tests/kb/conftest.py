"""Fixtures for knowledge-base tests: the demo shop's index, small bot directories, a migrated SQLite file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kefu.config import DEMO_BOT_DIR
from kefu.kb.botdir import load_bot_content
from kefu.kb.confidence import Thresholds, decide
from kefu.store.migrate import upgrade_database
from kefu.text.analyzer import Analyzer
from kefu.text.index import Index, Match, Weights

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def demo_index() -> Index:
    """The demo shop's FAQ and documents, indexed (built once per test run)."""
    content = load_bot_content(DEMO_BOT_DIR)
    assert not content.report.skipped, content.report.problems
    return Index(content.entries, Analyzer(content.lexicon), Weights())


@pytest.fixture
def ask(demo_index: Index) -> Callable[[str], tuple[list[Match], str]]:
    """Search the demo index the way the service does: ranked matches and the confidence band."""

    def search(query: str) -> tuple[list[Match], str]:
        matches = demo_index.search(query, limit=10, now=NOW)
        confidence, _ = decide(matches, Thresholds())
        return matches, confidence

    return search


@pytest.fixture
def bot_dir(tmp_path: Path) -> Path:
    """A small bot directory with three FAQ entries, a dictionary and synonyms."""
    root = tmp_path / "bot"
    (root / "kb" / "faq").mkdir(parents=True)
    (root / "kb" / "faq" / "faq.csv").write_text(
        "id,question,similar_questions,answer\n"
        "fee,运费怎么算？,邮费多少|包邮吗,满99元包邮。\n"
        "refund,退款多久到账？,钱什么时候退回来,1个工作日内原路退回。\n"
        "invoice,怎么开发票？,能开发票吗,下单时勾选开发票。\n",
        encoding="utf-8",
    )
    (root / "kb" / "synonyms.txt").write_text("运费, 邮费, yf\n", encoding="utf-8")
    (root / "kb" / "dictionary.txt").write_text("包邮\n", encoding="utf-8")
    return root


@pytest.fixture
async def database_url(tmp_path: Path) -> str:
    """A migrated SQLite database in the test's directory."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}"
    await upgrade_database(url)
    return url
