"""A fake OpenAI/DeepSeek-compatible upstream (``kefu mock-llm``) for tests and benchmarks."""

from kefu.llm.mock.config import MockConfig, MockStep
from kefu.llm.mock.server import build_mock_app, run_mock

__all__ = ["MockConfig", "MockStep", "build_mock_app", "run_mock"]
