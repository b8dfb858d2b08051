"""enrichment: derives data from the contact log that no one typed in, starting with display names."""
