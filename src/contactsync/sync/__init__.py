"""Two-way sync between a node and a provider user DB (ARCHITECTURE §5)."""
