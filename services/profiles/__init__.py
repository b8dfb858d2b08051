"""profiles: the canonical contact profile read model, each organizer's view of it, and profile snapshots."""
