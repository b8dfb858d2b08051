"""Test support: isolation, service processes, Kafka helpers and waiting."""
