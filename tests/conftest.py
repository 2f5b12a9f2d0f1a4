"""Test-wide JAX settings: 8 fake CPU devices and strict rank promotion.

Both must be set before JAX initialises its backends, i.e. before any test
module runs a JAX computation, which is why they live here.
"""

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_rank_promotion", "raise")
