"""The fused network, its inputs, subset naming and late fusion, checkpoints, the novelty check."""
