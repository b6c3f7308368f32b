"""Model providers behind one small interface: Claude, self-hosted OpenAI-compatible models, scripted.

The engine imports everything it needs from here; ``get_provider(name)`` loads a provider
module only when it is first used.
"""

from __future__ import annotations

from flows.providers.base import (
    PROVIDER_NAMES,
    ModelRequest,
    ModelResponse,
    OutputSchemaError,
    Provider,
    ProviderError,
    ToolCall,
    ToolSpec,
    get_provider,
)

__all__ = [
    "PROVIDER_NAMES",
    "ModelRequest",
    "ModelResponse",
    "OutputSchemaError",
    "Provider",
    "ProviderError",
    "ToolCall",
    "ToolSpec",
    "get_provider",
]
