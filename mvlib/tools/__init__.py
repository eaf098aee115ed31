"""Tools above the study: the notebooks' runner (`make reproduce`), the README's generated
blocks, the CPU benchmarks (`make bench`) and the GPU check (`make gpu-check`)."""
