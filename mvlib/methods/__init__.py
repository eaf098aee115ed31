"""Training methods that change a step of the loop: OGM-GE's gradient modulation and
greedy-learning re-balancing. (Gradient Blending's loss is mvlib.models.heads.blended_loss;
its weights are estimated from finished runs, mvlib.instruments.blending.)"""
