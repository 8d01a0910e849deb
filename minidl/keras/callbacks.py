"""Keras' callbacks (``tensorflow.keras.callbacks``), from ``minidl.training.callbacks``."""
from minidl.training.callbacks import (Callback, CallbackList, EarlyStopping, History,
                                       ModelCheckpoint, ProgbarLogger, TerminateOnNaN)

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint",
           "ProgbarLogger", "TerminateOnNaN"]
