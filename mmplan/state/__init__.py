"""Stage 3: the state clusters should have (desired, pure) and the state they have (live, read once)."""
