"""Data: the canonical breast-level store every source is written to, the epoch sampler,
loader and cropping windows, and real sources (NYU, RSNA, VinDr-Mammo, CBIS-DDSM) read,
cropped, given heatmaps and written into the store."""
