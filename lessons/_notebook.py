"""The lessons' figures: saved as PNG files in the lesson's output folder and, when a lesson runs
as a notebook (Jupyter, VS Code, nbclient), shown inline below the cell as well.

Lessons draw with ``matplotlib.figure.Figure`` (no pyplot, no window), which a notebook does not
display by itself; ``show`` saves the figure and hands the PNG to the notebook.
"""
import os
import sys


def show(figure, path: str) -> str:
    """Save ``figure`` as ``path`` (a PNG) and, inside a notebook kernel, display it inline.
    Returns the path."""
    figure.savefig(os.fspath(path), dpi=100)
    if "ipykernel" in sys.modules:  # a notebook: the figure appears in the cell's output
        from IPython.display import Image, display
        display(Image(filename=os.fspath(path)))
    return path
