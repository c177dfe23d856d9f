"""The server's routes, one module per area: native (ask, retrieve, models, health, the page), chat (OpenAI
compatible), documents (admin uploads and deletes)."""
