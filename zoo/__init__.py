"""zoo: a JAX/Flax model zoo of the sequence-model lineage."""
