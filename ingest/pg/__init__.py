"""The postgres index backend: PostgreSQL with pgvector behind ingest.backend's protocols.

- connect.py: connections (psycopg is imported only by this package), the DSN read from the environment variable
  the config names, schema migrations under an advisory lock;
- schema.py: the tables (documents, chunks with provenance and their vectors, cached vectors by text hash, meta),
  the pgvector HNSW and full-text indexes, row-level security keyed on the tenants of the current read;
- vectors.py: pgvector's type as numpy arrays;
- query.py: filters as SQL (inside each query), keyword queries;
- index.py: PgIndex (IndexBackend) and PgView (IndexView, one REPEATABLE READ snapshot);
- writer.py: PgWriter (IndexWriter: one advisory lock, one transaction per run).
"""
