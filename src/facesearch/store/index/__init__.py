"""Vector indexes: one interface (``base.VectorIndex``), an exact faiss backend, and their files."""
