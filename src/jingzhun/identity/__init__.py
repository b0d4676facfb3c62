"""Identity: normalise identifiers and resolve records into one ``customer_key`` per person."""

from jingzhun.identity._normalize import Normalised, keyed_hash, normalize_emails, normalize_phones

__all__ = ["Normalised", "keyed_hash", "normalize_emails", "normalize_phones"]
