"""Model packages: the ONNX graphs, checked against torch, and the manifest (package.py writes one; vqvae.py
and vae.py say what goes in; shared_weights.py stores tensors once; readback.py reads a package back)."""
