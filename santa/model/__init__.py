"""The SantaCoder model as plain torch: config, GPT with attention plugins, KV-cache generation,
HF GPTBigCode conversion (``santa.model.hf``, imported lazily: it pulls in transformers)."""

from santa.model.config import GPTConfig, santacoder_1b
from santa.model.generation import GenerationModel, KVCache, SantaGenerationModel, generate
from santa.model.gpt import GPT

__all__ = [
    "GPT",
    "GPTConfig",
    "GenerationModel",
    "KVCache",
    "SantaGenerationModel",
    "generate",
    "santacoder_1b",
]
