"""pytest, for the tests and for nbval: every kernel it starts runs headless.

``JEPA_HEADLESS=1`` makes the notebooks draw their explorers once instead of building widgets
that no front end would render (``jepa_core.frontend``); nbval's per-cell timeout is set in
``pyproject.toml`` (``--nbval-cell-timeout``).
"""

import os

from jepa_core.frontend import HEADLESS_ENV

os.environ[HEADLESS_ENV] = "1"
