"""Data: the canonical breast-level store every source is written to (its shards read
straight into a batch), the epoch sampler, the loader's threads and cropping windows, and
real sources (NYU, RSNA, VinDr-Mammo, CBIS-DDSM) read, cropped, given heatmaps and written
into the store."""
