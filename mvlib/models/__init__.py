"""The networks: ResNet-22 columns, the paper's heads on them (uni-view, Split, Joint, Shared)
and the patch classifier that makes heatmaps of real mammograms."""
