"""Payloads: deterministic pseudo-random bytes, so that what arrives can be
checked against what was sent without keeping it."""

import hashlib
import random

CHUNK = 256 * 1024  # bytes per pattern chunk, and per recv of the helpers


def pattern(seed, total, chunk=CHUNK):
    """Deterministic pseudo-random bytes, in chunks."""
    rng = random.Random(seed)
    left = total
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


def pattern_digest(seed, total):
    h = hashlib.sha256()
    for chunk in pattern(seed, total):
        h.update(chunk)
    return h.hexdigest()


def payload(index, size):
    """A payload that differs for every index (and is not all one byte)."""
    return random.Random(index * 1000003 + size).randbytes(size)
