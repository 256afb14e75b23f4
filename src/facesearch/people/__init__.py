"""People: grouping faces into individuals, and the corrections people make to it."""
