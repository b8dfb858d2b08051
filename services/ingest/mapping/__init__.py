"""The mapping step: which column holds which field (``proposal``, with HubSpot's labels in ``hubspot``), and the
bodies the API shows and accepts for it (``views``)."""
