"""A fake OpenAI/DeepSeek-compatible upstream (``kefu mock-llm``) for tests and benchmarks."""

from kefu.llm.mock.config import MockConfig, Step
from kefu.llm.mock.server import build_mock_app, run_mock

__all__ = ["MockConfig", "Step", "build_mock_app", "run_mock"]
