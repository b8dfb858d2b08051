"""ingest: receives organizers' CSV imports, publishes one event per row and tracks each import to the end."""
