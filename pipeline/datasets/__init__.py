"""Dataset adapters (one per distributed layout) and the synthetic generator."""
