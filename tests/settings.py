"""Settings for the test suite: development's, as `make run` has them (DEBUG on).

Set in the environment, not only here, so that the servers and commands the tests start as
subprocesses run as development too.
"""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "1")

from panel.settings import *  # noqa: E402, F403
