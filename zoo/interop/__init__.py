"""zoo and the rest of the ecosystem: weights in and out of torch modules
(``zoo.interop.torch``) and Hugging Face checkpoint directories (``zoo.interop.hf``),
and any zoo model as a Flax NNX module (``zoo.interop.nnx``).

The submodules are imported by name, so ``import zoo`` never imports torch.
"""
