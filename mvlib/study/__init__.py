"""The study: the paper's parts, one module per notebook, each holding what its notebook
calls (the runs it sweeps, its tables, its figures and the prose generated from them).

  protocol            the training protocol every notebook shares (search, repeat, summary)
                      and the run groups later notebooks reuse as baselines (Tables 1-2)
  data_preparation    00  Section 3: what the data set holds, beside the paper's
  uniview_curves      01  Section 5, Figure 3: uni-view learning curves
  training_dynamics   02  Section 5, Figures 4-7: gradient norms and LCA
  testbed             02  ours: the known-answer testbed (does an instrument find a planted cue?)
  section5            01, 02, 07  Section 5's claims judged across seeds
  model_variants      03  Table 1: uni-view, Split, Joint and Shared ResNet
  regularizers        04  Table 2: Pretraining, Split Learning Rates, Modality Dropout
  gradient_blending   05  Tables 4-5: Gradient Blending's weights and ablation
  without_heatmaps    06  Table 3: the image channel alone
  tables              07  Tables 1-6 beside the paper's
  mechanism           07  the paper's mechanism on the testbed: planted against control
  balancing_methods   08  beyond the paper, Table 7: OGM-GE and greedy re-balancing
  claims              01-09  every claim with its notebook key, its verdict, the closing boxes
                      and the results page (09)
  plots               the display every notebook shares (tables, saved figures, legends)

Below the study sit the executors, instruments, engine, methods, experiment, data, models and
core (see mvlib/__init__.py); nothing there imports the study.
"""
