"""The classifier: architecture factory, model card, and the one inference path (batching, traced forward, input checks)."""
