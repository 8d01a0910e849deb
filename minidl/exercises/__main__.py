"""``python -m minidl.exercises export DIR`` / ``grade PATH`` (the same as ``minidl ...``)."""
import sys

from minidl.exercises.cli import main

sys.exit(main())
