"""Readings of finished runs: AUC intervals and tests, view reliance and label-free
dependence, the counterfactual cue test and Gradient Blending's weight estimate."""
