"""End-to-end tests: the four services as real processes, one test per user flow."""
