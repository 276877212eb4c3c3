"""santa-generated-filter: a data-pipeline step for santa (entry point ``santa.filters:
generated``) that drops auto-generated and minified files, with a ``pipeline=base_generated``
Hydra preset."""

from santa_generated.filter import DEFAULT_MARKERS, GeneratedCode, longest_line, whitespace_fraction

__all__ = ["DEFAULT_MARKERS", "GeneratedCode", "longest_line", "whitespace_fraction"]
__version__ = "0.1.0"
