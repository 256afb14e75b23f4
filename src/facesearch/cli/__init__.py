"""The ``facesearch`` command: thin commands over the engine."""
