"""Datasets to tokens, offline: `latentgen-bulk` encodes an image folder, Parquet, WebDataset tars or an .npz into
Parquet shards of code grids (or VAE latents) on Ray Data, resumably and deterministically, and turns the shards into
token sequences for language-model training.

It imports the shared core (`contract`), onnxruntime, Ray and pyarrow: no torch, no FastAPI, nothing of `service`.
    package.py  a model package by id, checked, its encoder and decoder run tile by tile as the service runs them
    sources.py  what SOURCE holds: the items to encode, in a stable order, and their bytes
    shards.py   the output folder: the run's plan, shards written whole or not at all, the manifest
    encode.py   the Ray Data pipeline
    tokens.py   codes -> token sequences and back
"""
