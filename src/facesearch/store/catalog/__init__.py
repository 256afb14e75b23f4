"""The SQL catalog: collections, images and faces (the source of truth the vector indexes derive from)."""
