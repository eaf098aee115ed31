"""Numbers the paper reports (Wu et al. 2020), shown beside ours in every notebook."""

from __future__ import annotations

import pandas as pd

# Section 3: the NYU screening data set.
DATA = {"exams": 229_426, "images": 1_001_093, "patients": 141_472, "breasts": 458_852,
        "malignant breasts": 985, "benign breasts": 5_556}
CC_SIZE, MLO_SIZE = (2677, 1942), (2974, 1748)

# Test AUC: (mean, std over 3 seeds, 3x ensemble). Tables 1-3.
TABLE1 = {"uni-view MLO": (0.789, 0.010, 0.802), "uni-view CC": (0.864, 0.010, 0.874),
          "Split ResNet": (0.854, 0.016, 0.866), "Joint ResNet": (0.872, 0.005, 0.887),
          "Shared ResNet": (0.879, 0.003, 0.890)}
TABLE2 = {"Joint ResNet": (0.872, 0.005, 0.887), "+ Pretraining": (0.830, 0.012, 0.836),
          "+ Split Learning Rates": (0.864, 0.008, 0.878),
          "+ Gradient Blending": (0.870, 0.014, 0.880),
          "+ Modality Dropout": (0.876, 0.009, 0.886)}
TABLE3 = {"Joint ResNet": (0.694, 0.046, 0.692), "+ Modality Dropout": (0.702, 0.065, 0.779),
          "Shared ResNet": (0.713, 0.032, 0.728)}

# Appendix C. Table 4: blending weights (w_joint, w_cc, w_mlo) by measure and epoch window.
TABLE4 = {("loss", "[0, 100]"): (0.367, 0.300, 0.333), ("loss", "[90, 100]"): (0.373, 0.286, 0.341),
          ("auc", "[0, 100]"): (0.319, 0.398, 0.283), ("auc", "[90, 100]"): (0.446, 0.498, 0.056)}
# Table 5: blended models' weights (w_joint, w_cc, w_mlo) and test AUC; the loss and AUC
# weights were estimated on 10% of the validation set over epochs [0, 100].
TABLE5 = {"equal weights": ((0.333, 0.333, 0.333), 0.870), "loss": ((0.340, 0.325, 0.335), 0.853),
          "loss, swapped": ((0.340, 0.335, 0.325), 0.858), "AUC": ((0.246, 0.122, 0.632), 0.868),
          "AUC, swapped": ((0.246, 0.632, 0.122), 0.868)}


def data_table() -> pd.DataFrame:
    """The paper's Section 3 counts, with prevalences per breast."""
    breasts = DATA["breasts"]
    rows = {k: [v, f"{100 * v / breasts:.2f}%" if "breasts" in k and k != "breasts" else ""]
            for k, v in DATA.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["count", "per breast"])

# Section 5 on Figure 4: MLO's columns "contribute over 50% of the loss reduction in the first
# 5 epochs" (the share the LCA panels are read against).
FIG4_MLO_LCA_SHARE = 0.5
