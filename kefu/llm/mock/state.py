"""What the mock upstream remembers between requests (shared by the app and the responses it streams)."""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import Any

from kefu.llm.mock import oauth
from kefu.llm.mock.config import MockConfig, MockStep


class MockState:
    """Everything the mock remembers: config, the FIFO script, counters, recent requests, OAuth state."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.script: deque[MockStep] = deque()
        self.oauth = oauth.OAuthState(config)
        self.reset_stats()

    def reset_stats(self) -> None:
        """Zero the counters and forget recent requests."""
        self.requests = 0
        self.outcomes: Counter[str] = Counter()
        self.disconnects = 0
        self.active = 0
        self.max_active = 0
        self.over_capacity = 0
        self.seq = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)

    def next_step(self) -> MockStep:
        """The scripted step, else the CLI default (``fail`` / ``fail_rate``), else a normal answer."""
        if self.script:
            return self.script.popleft()
        config = self.config
        if config.fail is None and config.fail_rate is None:
            return MockStep()
        rate = 1.0 if config.fail_rate is None else config.fail_rate
        if self.rng.random() < rate:
            return MockStep(fail=config.fail or "503")
        return MockStep()

    def stats(self) -> dict[str, Any]:
        """The ``/_mock/stats`` document."""
        return {
            "requests": self.requests,
            "outcomes": dict(self.outcomes),
            "disconnects": self.disconnects,
            "active": self.active,
            "max_active": self.max_active,
            "over_capacity": self.over_capacity,
            "script_remaining": len(self.script),
            "last_request": self.recent[-1] if self.recent else None,
            "recent_requests": list(self.recent),
            "oauth_tokens_issued": self.oauth.issued,
        }
