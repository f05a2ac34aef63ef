"""The LLM layer: one OpenAI-compatible client (retries, cache, structured output) and the embedded server.

`embedded` is not imported here: it pulls in subprocess/model-file machinery that API-only users never need.
"""

from medsynth.llm.cache import ResponseCache
from medsynth.llm.client import (
    LLMClient,
    LLMConfig,
    LLMResponse,
    LLMStats,
    endpoint_from_env,
    forget_endpoint_modes,
)

__all__ = [
    "LLMClient",
    "LLMConfig",
    "LLMResponse",
    "LLMStats",
    "ResponseCache",
    "endpoint_from_env",
    "forget_endpoint_modes",
]
