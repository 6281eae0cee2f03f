"""The SQL layer's memory of answers: the Arrow side of the answer cache.

The disk layer (and its keys) belong to the Client (`sutro_sql.answer_cache`); this is
what makes a warm `sutro_run` vector cheap: per (cache, backend, Function, revision), a
`FunctionAnswers` holds the answers as one Arrow array plus the DuckDB hash of each input
text seen (with its slot), so a warm vector is one vectorized hash lookup, one text
comparison and one `take`.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..answers import ANSWER_TYPE

#: Memory layer bound: past this many answers for one Function, start over (the disk layer stays).
MAX_MEMORY_ANSWERS = 2_000_000


class HashIndex:
    """uint64 input hash -> int entry: an open-addressing table (linear probing) in numpy arrays,
    so a vector of hashes is looked up in a few vectorized gathers. New mappings wait in a dict
    and are merged, vectorized, by the next lookup. Not thread-safe (`FunctionAnswers` locks)."""

    _MIX = 0x9E3779B97F4A7C15  # Fibonacci hashing: the slot is the high bits of h * MIX (mod 2**64)

    def __init__(self, capacity: int = 1024) -> None:
        self._bits = max(4, int(capacity - 1).bit_length())
        self._keys = np.zeros(1 << self._bits, np.uint64)
        self._entries = np.full(1 << self._bits, -1, np.int64)  # -1: an empty slot
        self._count = 0
        self._pending: dict[int, int] = {}

    def set(self, text_hash: int, entry: int) -> None:
        """Map `text_hash` to `entry` (replacing its previous entry)."""
        self._pending[text_hash] = entry

    def get(self, text_hash: int) -> int | None:
        """One hash's entry (without merging the new mappings)."""
        entry = self._pending.get(text_hash)
        if entry is not None:
            return entry
        slot = ((text_hash * self._MIX) & 0xFFFF_FFFF_FFFF_FFFF) >> (64 - self._bits)
        while (entry := int(self._entries[slot])) >= 0:
            if int(self._keys[slot]) == text_hash:
                return entry
            slot = (slot + 1) & (len(self._keys) - 1)
        return None

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Per hash (uint64), its entry, or -1."""
        if self._pending:
            self._insert(np.fromiter(self._pending, np.uint64), np.fromiter(self._pending.values(), np.int64))
            self._pending = {}
        slots = self._slots(hashes)
        entries = self._entries[slots]
        found = np.where(self._keys[slots] == hashes, entries, -1)  # most hashes sit in their first slot
        pending = np.flatnonzero((found < 0) & (entries >= 0))
        while len(pending):  # the slot held another hash: probe the next ones
            slots[pending] = (slots[pending] + 1) & (len(self._keys) - 1)
            at = slots[pending]
            entries = self._entries[at]
            hit = (entries >= 0) & (self._keys[at] == hashes[pending])
            found[pending[hit]] = entries[hit]
            pending = pending[(entries >= 0) & ~hit]
        return found

    def _slots(self, hashes: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return ((hashes * np.uint64(self._MIX)) >> np.uint64(64 - self._bits)).astype(np.int64)

    def _insert(self, keys: np.ndarray, entries: np.ndarray) -> None:
        """Insert distinct `keys`, keeping the table at most a quarter full (short probe chains)."""
        if 4 * (self._count + len(keys)) > len(self._keys):
            live = self._entries >= 0
            old_keys, old_entries = self._keys[live], self._entries[live]
            self.__init__(4 * (self._count + len(keys)))
            self._insert(old_keys, old_entries)
        slots = self._slots(keys)
        pending = np.arange(len(keys))
        while len(pending):
            at = slots[pending]
            occupied = self._entries[at] >= 0
            first = np.zeros(len(pending), bool)
            first[np.unique(at, return_index=True)[1]] = True  # one new key per empty slot per round
            writes = (occupied & (self._keys[at] == keys[pending])) | (~occupied & first)
            self._count += int((writes & ~occupied).sum())
            self._keys[at[writes]], self._entries[at[writes]] = keys[pending[writes]], entries[pending[writes]]
            pending = pending[~writes]
            slots[pending] = (slots[pending] + 1) & (len(self._keys) - 1)


class FunctionAnswers:
    """In-memory answers of one (backend, Function, revision). Thread-safe.

    Inputs are found by the DuckDB `hash()` of the input value (an int, cheap to
    look up), confirmed against the exact input text, so a hash collision can only
    cost a slow lookup, never a wrong answer. Each answer also records the statement
    (`epoch`) whose call computed it, 0 when it came from elsewhere (the disk, another
    process): a repeat within the statement that computed an answer is dedup, not a
    cache hit, however DuckDB splits the rows into vectors."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # held by callers that check memory and in-flight calls together
        self._by_hash = HashIndex()  # input hash -> text entry
        self._texts = _GrowingArray(pa.string())  # text entry -> input text
        self._text_slots: list[int] = []  # text entry -> answer slot
        self._text_slots_np = np.empty(0, np.int64)
        self._by_canonical: dict[str, int] = {}
        self._answers = _GrowingArray(ANSWER_TYPE)
        self._epochs: list[int] = []  # answer slot -> the statement that computed it (0: none)
        self._epochs_np = np.empty(0, np.int64)
        self._computing_epochs: set[int] = set()  # statements that computed any answer here

    def lookup_rows(self, hashes: np.ndarray, inputs: pa.Array) -> pa.Array | None:
        """Per row, the answer slot of its input (NULL for NULL input); None if any input is new."""
        valid = None if inputs.null_count == 0 else inputs.is_valid().to_numpy(zero_copy_only=False)
        with self.lock:
            entries = self._by_hash.lookup(hashes)
            if valid is not None:
                entries[~valid] = 0  # any entry: NULL rows get a NULL slot below
            if (entries < 0).any():
                return None
            if len(self._text_slots_np) < len(self._text_slots):
                self._text_slots_np = np.asarray(self._text_slots, np.int64)
            known = self._texts.take(pa.array(entries))
            slots = self._text_slots_np[entries]
        if valid is None:
            if not known.equals(inputs):  # a hash collision: let the slow path sort it out
                return None
        elif pc.equal(known, inputs).false_count:
            return None
        return pa.array(slots, mask=None if valid is None else ~valid)

    def slots_for_texts(self, texts: list[str], hashes: list[int]) -> list[int | None]:
        with self.lock:
            entries = self._by_hash.lookup(np.array(hashes, np.uint64)).tolist()
            return [
                None if entry < 0 or self._texts.value(entry) != text else self._text_slots[entry]
                for text, entry in zip(texts, entries, strict=True)
            ]

    def slot_for_canonical(self, canonical: str) -> int | None:
        with self.lock:
            return self._by_canonical.get(canonical)

    def row_for_canonical(self, canonical: str) -> dict[str, Any] | None:
        with self.lock:
            slot = self._by_canonical.get(canonical)
            return None if slot is None else self._answers.value(slot)

    def remember(self, canonical: str, row: dict[str, Any] | None = None, epoch: int = 0) -> int:
        """Remember `row` for `canonical` (or reuse the slot already holding it); returns the slot.
        `epoch`: the statement whose call computed `row` (0: it was not computed here).
        Without an input text: `sutro_batch` answers are found by canonical form until a
        `sutro_run` vector maps its text to them (`add`)."""
        with self.lock:
            slot = self._by_canonical.get(canonical)
            if slot is None:
                if len(self._answers) >= MAX_MEMORY_ANSWERS:
                    self._clear()
                slot = len(self._answers)
                self._answers.append(row)
                self._epochs.append(epoch)
                if epoch:
                    self._computing_epochs.add(epoch)
                self._by_canonical[canonical] = slot
            return slot

    def add(self, text: str, text_hash: int, canonical: str, row: dict[str, Any] | None = None, epoch: int = 0) -> int:
        """Remember `row` for `canonical` (see `remember`) and map the input `text` to its slot."""
        with self.lock:
            slot = self.remember(canonical, row, epoch)
            entry = self._by_hash.get(text_hash)
            if entry is not None and self._texts.value(entry) == text and self._text_slots[entry] == slot:
                return slot  # this text is already known
            self._by_hash.set(text_hash, len(self._text_slots))
            self._texts.append(text)
            self._text_slots.append(slot)
            return slot

    def computed_during(self, epoch: int) -> bool:
        """Whether statement `epoch` computed any answer here (a statement that only reads the
        cache computed none, and its warm vectors need no per-row check)."""
        return epoch in self._computing_epochs

    def computed_in(self, slots: np.ndarray, epoch: int) -> np.ndarray:
        """Per slot, whether statement `epoch` computed its answer."""
        with self.lock:
            if len(self._epochs_np) < len(self._epochs):
                self._epochs_np = np.asarray(self._epochs, np.int64)
            return self._epochs_np[slots] == epoch

    def row(self, slot: int) -> dict[str, Any]:
        return self._answers.value(slot)

    def take(self, slots: pa.Array) -> pa.StructArray:
        """The answers at `slots` (an int64 array, nulls allowed) as one Arrow array."""
        with self.lock:
            return self._answers.take(slots)

    def _clear(self) -> None:
        self._by_hash = HashIndex()
        self._texts = _GrowingArray(pa.string())
        self._text_slots = []
        self._text_slots_np = np.empty(0, np.int64)
        self._by_canonical.clear()
        self._answers = _GrowingArray(ANSWER_TYPE)
        self._epochs = []
        self._epochs_np = np.empty(0, np.int64)
        self._computing_epochs = set()


class _GrowingArray:
    """An append-only Arrow array: Python values pile up and become a chunk when read; chunks
    merge when there are many, or on the first read that adds nothing (the warm path), so
    appends stay cheap and warm reads are one `take` on one array."""

    MAX_CHUNKS = 8

    def __init__(self, kind: pa.DataType) -> None:
        self.kind = kind
        self._chunks: list[pa.Array] = []
        self._pending: list[Any] = []
        self._values: list[Any] = []

    def __len__(self) -> int:
        return len(self._values)

    def append(self, value: Any) -> None:
        self._pending.append(value)
        self._values.append(value)

    def value(self, index: int) -> Any:
        return self._values[index]

    def take(self, indices: pa.Array) -> pa.Array:
        if self._pending:
            self._chunks.append(pa.array(self._pending, self.kind))
            self._pending = []
            if len(self._chunks) > self.MAX_CHUNKS:
                self._chunks = [pa.concat_arrays(self._chunks)]
        elif len(self._chunks) > 1:  # nothing new since the last read: merge once for fast takes
            self._chunks = [pa.concat_arrays(self._chunks)]
        if len(self._chunks) == 1:
            return self._chunks[0].take(indices)
        return pa.chunked_array(self._chunks, self.kind).take(indices).combine_chunks()


_MEMORY: dict[tuple[str, str, str, str], FunctionAnswers] = {}
_MEMORY_LOCK = threading.Lock()


def function_answers(cache_path: str, identity: str, function: str, revision: str) -> FunctionAnswers:
    """The process-wide memory of one (answer cache file, backend, Function, revision), shared by
    every session over that cache, as the file itself is."""
    key = (cache_path, identity, function, revision)
    with _MEMORY_LOCK:
        answers = _MEMORY.get(key)
        if answers is None:
            answers = _MEMORY[key] = FunctionAnswers()
        return answers
