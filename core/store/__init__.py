"""Infrastructure below the data layer: the append-only audit trail and the case identifiers."""
