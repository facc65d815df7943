"""Content moderation: a sensitive-word lexicon from the bot directory (``moderation.yaml``) and an optional
external moderation endpoint. The engine checks the shopper's message before anything else and the model's
output with a hold-back window (:mod:`kefu.engine.output`); docs/moderation.md."""

from kefu.moderation.config import ModerationConfig, load_moderation
from kefu.moderation.external import ExternalModeration
from kefu.moderation.lexicon import Category, Moderator
from kefu.moderation.verdict import Hit, Verdict

__all__ = ["Category", "ExternalModeration", "Hit", "ModerationConfig", "Moderator", "Verdict", "load_moderation"]
