"""The training engine: one run top to bottom (train), its evaluation, the training-time
instruments (per-view gradient norms, Loss Change Allocation), the hyper-parameter search and
each view's part of a finished run's decision."""
