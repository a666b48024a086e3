"""Experiments over runs: the paper's tables (`report`), sweeps (`sweep`) and plots (`plots`)."""
