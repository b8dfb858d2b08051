"""ingest's HTTP face. Use cases: an upload coming in (``uploads``, streamed by ``multipart``) and contacts sent
as JSON (``json_imports``). Routes, as module-level routers: ``upload_api`` (send, delete), ``mapping_api`` (the
mapping step, start) and ``imports_api`` (follow an import, page through its rows); what they depend on is
provided once by ``create_app`` (``dependencies``)."""
