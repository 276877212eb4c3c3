"""Evaluation: benchmarks (plugins), generation and scoring (harness), sandboxed execution,
pass@k, and reports."""
