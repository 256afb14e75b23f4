"""The HTTP service: native REST API, CompreFace-compatible endpoints and the web UI, over one engine."""
