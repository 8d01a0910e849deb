"""Data: datasets shipped inside packages, Dataset/DataLoader, Tokenizer, pad_sequences."""

from minidl.data.loader import ArrayDataset, DataLoader, Dataset  # noqa: E402,F401
