"""Models of the workflow: what is built from trained networks (the seed ensemble)."""
