"""Data pipeline steps (entry-point group ``santa.filters``). The contract is in base.py."""
