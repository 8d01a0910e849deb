"""Applications built on the framework: they use minidl, minidl does not use them.

- ``charlm``: the seed's character LSTM language model, TBPTT pretraining, generation, and the
  transfer of its encoder into a sentiment classifier.
- ``demo``: ``minidl demo``, pretraining → fine-tuning → evaluation at several label budgets.
"""
