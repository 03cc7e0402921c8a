"""The adversarial suite (RFC 8725 / RFC 9068 §4 categories)."""
