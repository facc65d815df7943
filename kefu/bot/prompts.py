"""The bot's system prompt, read from the bot directory."""

from __future__ import annotations

from pathlib import Path

from kefu.errors import ConfigError

DEFAULT_PROMPT = "You are a helpful, concise customer-service assistant. Answer in the user's language."


def load_system_prompt(bot_dir: Path) -> str:
    """``system_prompt.md`` from the bot directory; the built-in default when the file is absent."""
    if not bot_dir.is_dir():
        raise ConfigError(f"bot directory {bot_dir} does not exist (KEFU_BOT_DIR)")
    path = bot_dir / "system_prompt.md"
    if not path.exists():
        return DEFAULT_PROMPT
    text = path.read_text(encoding="utf-8").strip()
    return text or DEFAULT_PROMPT
