"""The learned-sparse inverted index: on-disk format, streaming builder, Numba (CPU) and CUDA (GPU) search."""
