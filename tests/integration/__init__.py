"""Tests against the real broker (Tansu) and a real PostgreSQL."""
