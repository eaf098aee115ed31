"""Core: where things live, atomic writes, the paper's reported numbers, the device and the
sweep progress file; nothing here imports another layer."""
