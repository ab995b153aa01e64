"""Stage 5: making the clusters match a plan, and the live plan/apply workflow."""
