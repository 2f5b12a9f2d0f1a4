"""The es-en translation configs' tiny variants (the recurrent models), trained end to end.

The checks are test_configs.py's; the variants live in this file only so that
pytest-xdist (``--dist loadfile``) can train them beside that file's runs.
"""

import pytest
from test_configs import CONFIGS, ES_EN, _skip_without, check_tiny_run


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow,
                                                        *_skip_without(CONFIGS[n])])
                                  for n in ES_EN])
def test_tiny_variant_trains(name, tmp_path, shared_data_dir):
    check_tiny_run(name, tmp_path, shared_data_dir)
