"""Recommenders for implicit feedback: MF-BPR, NeuMF, MultVAE and LightGCN, dense or trained with
Dynamic Sparse Learning (a constant parameter budget from the first step to the last), evaluated by
full ranking as LightGCN reports it, stored compactly and served from an HNSW index.

Only numpy, scipy and torch are needed to train (``python -m lsr.recommend train ...``); hnswlib,
matplotlib and tqdm are imported where they are used.
"""
