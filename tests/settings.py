"""Settings for the test suite: development's, as `make run` has them (DEBUG on).

Set in the environment, not only here, so that the servers and commands the tests start as
subprocesses run as development too.

Each test run keeps its data (the SQLite test database, the broker's folders, the
certificate) in a folder of its own, made here and removed when the run ends, so that two
runs from one checkout never share a database file. The processes a run starts inherit the
folder through the environment (TEST_RUN_DIR says it is made), and make none of their own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("DEBUG", "1")
# Development's outbox is off: the suite checks that system mail joins the outbound queue,
# as in production; the outbox's own tests (and the browser walk) turn it on.
os.environ.setdefault("DEV_OUTBOX", "0")
if "TEST_RUN_DIR" not in os.environ:
    os.environ["TEST_RUN_DIR"] = os.environ["DATA_DIR"] = tempfile.mkdtemp(
        prefix="mailhost-tests-")
    atexit.register(shutil.rmtree, os.environ["TEST_RUN_DIR"], ignore_errors=True)

from panel.settings import *  # noqa: E402, F403
