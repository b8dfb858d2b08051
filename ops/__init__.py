"""Operator tooling with state of its own: the ``ops`` schema (dead letters already re-driven)."""
