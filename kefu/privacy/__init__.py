"""Personal-data rights and retention: list, export and erase a shopper's data; anonymise and delete old
conversations (docs/privacy.md)."""
