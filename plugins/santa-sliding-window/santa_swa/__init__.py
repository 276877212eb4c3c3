"""santa-sliding-window: a sliding-window attention plugin for santa (entry point
``santa.attention: swa``), with a ``model=tiny_swa`` Hydra config."""

from santa_swa.attention import SlidingWindowAttention, SlidingWindowConfigError, window_settings

__all__ = ["SlidingWindowAttention", "SlidingWindowConfigError", "window_settings"]
__version__ = "0.1.0"
