"""Training: the fit/evaluate/predict loop for any ``nn.Module``, callbacks and the progress bar.

    from minidl.training import fit, EarlyStopping
    history = fit(model, F.binary_cross_entropy, optimizer, x, y, epochs=20,
                  validation_split=0.2, callbacks=[EarlyStopping(patience=3)])

``minidl.keras`` wraps these in Keras' ``model.compile/fit/evaluate/predict``.
"""
from minidl.training.callbacks import (Callback, CallbackList, EarlyStopping, History,
                                       ModelCheckpoint, ProgbarLogger, TerminateOnNaN)
from minidl.data.validation import check_data
from minidl.training.loop import NonFiniteLossWarning, evaluate, fit, predict, split_validation
from minidl.training.progress import Progbar

__all__ = ["fit", "evaluate", "predict", "check_data", "split_validation", "Callback",
           "CallbackList", "History", "EarlyStopping", "ModelCheckpoint", "ProgbarLogger",
           "TerminateOnNaN", "NonFiniteLossWarning", "Progbar"]
