"""Moved to ``minidl.apps.demo``; this alias is kept for one release."""
from minidl.apps.demo import *  # noqa: F401,F403
from minidl.apps.demo import run  # noqa: F401
