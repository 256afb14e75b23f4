"""Face models behind small Protocols; see ``base`` for the contracts and ``registry`` for loading."""
