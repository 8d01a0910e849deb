"""Moved to ``minidl.backend.strict`` (every device now lives in ``minidl/backend/``); this alias
is kept for one release."""
from minidl.backend.strict import *  # noqa: F401,F403
