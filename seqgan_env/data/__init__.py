"""Data: the tokenizer contract (PAD=0, BOS=1, EOS=2 defined once) and text data sets."""
