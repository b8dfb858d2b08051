"""Contracts and plumbing shared by every service: events, topics, config, logging, broker and database helpers."""
