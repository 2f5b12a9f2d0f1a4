"""Weights in and out of zoo: torch modules (``zoo.interop.torch``) and Hugging Face
checkpoint directories (``zoo.interop.hf``).

The submodules are imported by name, so ``import zoo`` never imports torch.
"""
