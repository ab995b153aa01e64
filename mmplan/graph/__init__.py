"""Stage 2: the compiled cluster graph and the offline checks. Pure: no network."""
