"""Stage 1: the topology file (models, loading, findings). Pure: no network."""
