"""Content moderation: a sensitive-word lexicon from the bot directory (``moderation.yaml``) and an optional
external moderation endpoint. The engine checks the shopper's message before anything else and the model's
output with a hold-back window (:mod:`kefu.engine.output`)."""

from kefu.moderation.config import ModerationConfig, load_moderation
from kefu.moderation.external import ExternalModeration
from kefu.moderation.lexicon import Hit, Moderator, Verdict

__all__ = ["ExternalModeration", "Hit", "ModerationConfig", "Moderator", "Verdict", "load_moderation"]
