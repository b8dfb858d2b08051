"""identity: normalizes emails, resolves one canonical contact per person, appends the contact log."""
