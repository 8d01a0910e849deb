"""Moved to ``minidl.apps.charlm`` (applications live apart from the library). This alias is
kept for one release; ``transfer.evaluate`` is now ``charlm.classification_scores``."""
from minidl.apps.charlm import *  # noqa: F401,F403
from minidl.apps.charlm import classification_scores as evaluate  # noqa: F401
