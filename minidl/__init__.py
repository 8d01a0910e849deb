"""minidl: a deep-learning framework written from scratch on NumPy, with CuPy on CUDA GPUs.

    import minidl as md
    x = md.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    x.grad            # tensor([[2., 4.]])

The layers, bottom up; each imports only those before it (a test checks every import):
backend → autograd → functions → {nn, optim, gradcheck, io} → data
→ {training, metrics, distributed} → models → keras → {apps, plot, cli, exercises}.
Only ``minidl.backend`` names CuPy.
"""
from minidl import functions  # noqa: F401  (installs Tensor's operators)
from minidl.autograd import (Function, GradientError, ShapeError, Tensor, enable_grad, grad,
                             is_grad_enabled, no_grad, tensor)
from minidl.backend import DeviceError, cuda, manual_seed
from minidl.gradcheck import GradcheckError, gradcheck
from minidl.io import CheckpointError, load, load_checkpoint, save, save_checkpoint
from minidl import nn, optim  # noqa: E402,F401

__version__ = "0.2.0"


def __getattr__(name: str):
    """``md.pretrained`` (shipped checkpoints) is imported on first use: it needs the data
    layer, which plain ``import minidl`` does not load."""
    if name == "pretrained":
        from minidl.models import pretrained
        return pretrained
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")

__all__ = ["Tensor", "Function", "tensor", "grad", "no_grad", "enable_grad", "is_grad_enabled",
           "gradcheck", "GradcheckError", "ShapeError", "GradientError", "DeviceError", "cuda",
           "manual_seed", "functions", "nn", "optim", "save", "load", "save_checkpoint",
           "load_checkpoint", "CheckpointError"]
