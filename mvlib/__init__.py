"""mvlib: the executable companion to Wu et al., "Improving the Ability of Deep Neural Networks
to Use Information from Multiple Views in Breast Cancer Screening" (MIDL 2020).

One folder per layer, bottom first; a module imports only from its own layer and those below
(tests/test_layers.py):

  core         paths, atomic writes, the paper's numbers, the device, sweep progress
  models       ResNet-22 columns, the paper's heads, the heatmaps' patch classifier
  data         the canonical breast store, its loader and windows; real sources into it
  synth        the synthetic two-view generator (the known-answer testbed's data)
  experiment   profiles (sizes and budgets), a profile's data set, a run's config and folder
  methods      what changes a training step: OGM-GE, greedy-learning re-balancing
  engine       the training loop (train_one_epoch, evaluate), gradient norms and LCA, the
               search, each view's part of a finished run's decision
  instruments  readings of finished runs: AUC statistics, view reliance and dependence,
               the cue test, Gradient Blending's weight estimate
  executors    sweeps of runs, on this machine or on SLURM
  study        the paper's parts, one module per notebook, with their figures and claims
  tools        the notebooks' runner, the README's generated blocks, the benchmarks
"""
