"""Executors: sweeps of runs into the store, on this machine or as SLURM job arrays."""
