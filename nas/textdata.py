"""Text for language models: a byte-level corpus cut into windows of next-byte prediction.

Built-in corpus:

- ``gcide``: the GNU Collaborative International Dictionary of English (Webster's 1913 with
  additions and its quotations), from the Debian package ``dict-gcide``
  (``/usr/share/dictd/gcide.dict.dz``; another file with ``NAS_GCIDE_DICT``). GPL-2 or later.
  About 40 MB of English; the lines that only name an entry's source (``[1913 Webster]``) are
  dropped and runs of spaces folded, leaving about 28 MB.

A user's text: ``text:PATH`` (UTF-8 or any other bytes that are text: no NUL, mostly printable).

Tokens are bytes. The vocabulary is the set of byte values the corpus holds (a byte the corpus
never has cannot be typed into a prompt); it is kept with the dataset and the checkpoint. The
corpus is split into train, validation and test by contiguous blocks of 4 KiB (one block in every
``held_out_every`` to validation, the one after it to test: about 128 KiB each of a large corpus,
one block in 8 each of a small one), so that the held-out text comes from all over the corpus,
not from one end of an alphabetical dictionary; each split is cut into non-overlapping windows of
``context`` inputs and the ``context`` next bytes as targets, the training windows in a fixed
random order (so that ``--limit N`` takes N windows from all over the text).
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.errors import NasError

GCIDE_DICT = "/usr/share/dictd/gcide.dict.dz"
BLOCK = 4096  # bytes per block of the split
MIN_BYTES = 16 * BLOCK  # the smallest text that gives every split something
MAX_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Corpus:
    """A text and its byte vocabulary."""

    name: str
    text: bytes
    vocab: bytes  # sorted byte values the text holds; token i is byte vocab[i]

    def splits(self) -> tuple[bytes, bytes, bytes]:
        """(train, validation, test) as concatenations of 4 KiB blocks (see the module doc)."""
        blocks = [self.text[i : i + BLOCK] for i in range(0, len(self.text), BLOCK)]
        every = held_out_every(len(blocks))
        train = b"".join(b for i, b in enumerate(blocks) if i % every < every - 2)
        val = b"".join(b for i, b in enumerate(blocks) if i % every == every - 2)
        test = b"".join(b for i, b in enumerate(blocks) if i % every == every - 1)
        return train, val, test


def held_out_every(blocks: int) -> int:
    """One validation and one test block in every this many: about 32 of each (128 KiB, enough for
    bits per byte to a few thousandths, and quick to score), never more than one in 8."""
    return min(256, max(8, blocks // 32))


def token_table(vocab: bytes) -> np.ndarray:
    """A 256-entry map from byte value to token id (-1 where the vocabulary lacks the byte)."""
    table = np.full(256, -1, dtype=np.int16)
    table[np.frombuffer(vocab, dtype=np.uint8)] = np.arange(len(vocab), dtype=np.int16)
    return table


def encode(text: bytes, vocab: bytes, what: str = "text") -> np.ndarray:
    """Token ids of ``text``; NasError naming the first byte the vocabulary lacks."""
    ids = token_table(vocab)[np.frombuffer(text, dtype=np.uint8)]
    missing = np.flatnonzero(ids < 0)
    if missing.size:
        byte = text[int(missing[0])]
        shown = repr(bytes([byte]))[1:]
        raise NasError(f"{what} holds byte 0x{byte:02x} ({shown}) at offset {int(missing[0])}, which the "
                       f"training text never had (the vocabulary has {len(vocab)} byte values)")
    return ids.astype(np.uint8 if len(vocab) <= 256 else np.int64)


def decode(ids: np.ndarray | list[int], vocab: bytes) -> bytes:
    return bytes(vocab[int(i)] for i in ids)


def windows(ids: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping (inputs, next-byte targets) windows of ``context`` tokens: (N, context) each."""
    n = (len(ids) - 1) // context
    x = ids[: n * context].reshape(n, context)
    y = ids[1 : n * context + 1].reshape(n, context)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def check_text(data: bytes, where: str) -> None:
    """One-line errors for what is not a text a model can learn from."""
    if not data:
        raise NasError(f"{where} is empty: a language model needs text")
    if b"\x00" in data[:1_000_000]:
        raise NasError(f"{where} is binary (it holds NUL bytes), not text")
    sample = data[:1_000_000]
    printable = sum(1 for b in sample if 32 <= b < 127 or b in (9, 10, 13) or b >= 128)
    if printable < 0.95 * len(sample):
        raise NasError(f"{where} is binary ({100 - 100 * printable / len(sample):.0f}% control bytes), not text")
    if len(data) < MIN_BYTES:
        raise NasError(f"{where} has {len(data):,} bytes: a language model needs at least {MIN_BYTES:,} "
                       f"(64 KiB) to split into train, validation and test")


def _clean_gcide(raw: bytes) -> bytes:
    """The dictionary's text without its source-tag lines, indentation and runs of spaces."""
    text = re.sub(rb"(?m)^[ \t]*\[[^\]\n]*\][ \t]*\n", b"", raw)
    text = re.sub(rb"(?m)^[ \t]+", b"", text)
    return re.sub(rb"[ \t]{2,}", b" ", text)


def gcide() -> Corpus:
    path = Path(os.environ.get("NAS_GCIDE_DICT", GCIDE_DICT))
    if not path.is_file():
        raise NasError(f"GCIDE not found at {path}: install the Debian package dict-gcide "
                       "(apt-get install dict-gcide) or set NAS_GCIDE_DICT")
    try:
        with gzip.open(path, "rb") as f:  # dictzip is gzip with an index
            raw = f.read(MAX_BYTES)
    except (OSError, EOFError) as exc:
        raise NasError(f"GCIDE file {path} is unreadable: {exc}") from None
    text = _clean_gcide(raw)
    return Corpus("gcide", text, bytes(sorted(set(text))))


def from_file(spec: str) -> Corpus:
    """``text:PATH``: a user's text file."""
    path = Path(spec[len("text:"):])
    where = f"text file {str(path)!r}"
    if not path.is_file():
        raise NasError(f"{where} does not exist")
    if path.stat().st_size > MAX_BYTES:
        raise NasError(f"{where} is larger than {MAX_BYTES // 2**20} MiB")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NasError(f"cannot read {where}: {exc.strerror or exc}") from None
    check_text(data, where)
    return Corpus(spec, data, bytes(sorted(set(data))))


def corpus(spec: str) -> Corpus:
    if spec == "gcide":
        return gcide()
    if spec.startswith("text:"):
        return from_file(spec)
    raise NasError(f"unknown text dataset {spec!r} (built-in: gcide; or text:PATH for a text file of your own)")
