"""Hand-crafted baselines of the paper's Table 2."""
