"""The SQL layer's memory of answers: the Arrow side of the answer cache.

The disk layer (and its keys) belong to the Client (`sutro_sql.answer_cache`); this is
what makes a warm `sutro_run` vector cheap: per (cache, backend, Function, revision), a
`FunctionAnswers` holds the answers as Arrow arrays plus the DuckDB hash of each input
text seen (with its slot), so a warm vector is one vectorized hash lookup, one text
comparison and a dictionary array over the answers it uses (DuckDB reads that without a
copy of each row's answer). Answers read back say `source` 'cache', unless the statement
reading them computed them.

The memory is bounded in bytes, for the whole process (`MemoryBudget`, set by
SUTRO_SQL_MEMORY_CACHE_MB): past the bound, the Function holding the most forgets its
answers (the disk layer keeps them). Slots never leave a `FunctionAnswers` method, so a
forgetting never leaves a caller holding a slot that now means another answer.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import environment
from ..answers import ANSWER_TYPE, from_cache
from ..errors import ConfigurationError

#: The memory bound when SUTRO_SQL_MEMORY_CACHE_MB is unset (MB, for all Functions together).
DEFAULT_MEMORY_MB = 1024
#: Bytes counted per canonical input kept in the dict that finds answers by canonical form,
#: on top of the string itself (the dict entry and the slot's int).
_CANONICAL_OVERHEAD = 40


def answers_by_row(indices: np.ndarray, answers: pa.Array, null_rows: np.ndarray | None = None) -> pa.DictionaryArray:
    """Per row, `answers[indices[row]]` (NULL where `null_rows`), as a dictionary array, which
    DuckDB reads without a copy of each row's answer. DuckDB 2.0.1 fails on a dictionary of
    2**k - 1 nested values ('Vector::SetSize out of range'), so such a one gets a NULL more."""
    if (len(answers) + 1) & len(answers) == 0:
        answers = pa.concat_arrays([answers, pa.nulls(1, answers.type)])
    rows = pa.array(indices.astype(np.int32, copy=False), mask=null_rows)
    return pa.DictionaryArray.from_arrays(rows, answers, safe=False)


class HashIndex:
    """uint64 input hash -> int entry, in numpy arrays: a key sits in its home slot (the high bits
    of h * MIX) of a table kept at most a quarter full, or, when another key holds that slot, in a
    short sorted spill list. A vector of hashes is looked up with one gather and one binary search
    for the few that spilled: no probing loops. New mappings wait in a dict and are merged,
    vectorized, by the next lookup. Not thread-safe (`FunctionAnswers` locks)."""

    _MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing

    def __init__(self, capacity: int = 16) -> None:
        self._bits = max(4, int(capacity - 1).bit_length())
        self._shift = np.uint64(64 - self._bits)
        self._keys = np.zeros(1 << self._bits, np.uint64)
        self._entries = np.full(1 << self._bits, -1, np.int64)  # -1: an empty slot
        self._spilled_keys = np.empty(0, np.uint64)  # sorted
        self._spilled_entries = np.empty(0, np.int64)
        self._count = 0
        self._pending: dict[int, int] = {}

    @property
    def nbytes(self) -> int:
        arrays = (self._keys, self._entries, self._spilled_keys, self._spilled_entries)
        return sum(array.nbytes for array in arrays) + 100 * len(self._pending)

    def set(self, text_hash: int, entry: int) -> None:
        """Map `text_hash` to `entry` (replacing its previous entry)."""
        self._pending[text_hash] = entry

    def get(self, text_hash: int) -> int | None:
        """One hash's entry (without merging the new mappings)."""
        entry = self._pending.get(text_hash)
        if entry is not None:
            return entry
        slot = int(self._slots(np.array([text_hash], np.uint64))[0])
        if self._entries[slot] < 0:
            return None
        if int(self._keys[slot]) == text_hash:
            return int(self._entries[slot])
        at = int(np.searchsorted(self._spilled_keys, np.uint64(text_hash)))
        if at < len(self._spilled_keys) and int(self._spilled_keys[at]) == text_hash:
            return int(self._spilled_entries[at])
        return None

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Per hash (uint64), its entry, or -1."""
        if self._pending:
            self._insert(np.fromiter(self._pending, np.uint64), np.fromiter(self._pending.values(), np.int64))
            self._pending = {}
        slots = self._slots(hashes)
        entries = self._entries[slots]
        found = np.where(self._keys[slots] == hashes, entries, -1)
        if len(self._spilled_keys):
            elsewhere = np.flatnonzero((found < 0) & (entries >= 0))  # home taken by another key
            if len(elsewhere):
                wanted = hashes[elsewhere]
                at = np.minimum(np.searchsorted(self._spilled_keys, wanted), len(self._spilled_keys) - 1)
                hit = self._spilled_keys[at] == wanted
                found[elsewhere[hit]] = self._spilled_entries[at[hit]]
        return found

    def _slots(self, hashes: np.ndarray) -> np.ndarray:
        return ((hashes * self._MIX) >> self._shift).astype(np.int64)  # arrays wrap around silently

    def _insert(self, keys: np.ndarray, entries: np.ndarray) -> None:
        """Insert distinct `keys` (replacing the entries of known ones)."""
        if 4 * (self._count + len(keys)) > len(self._keys):  # grow: insert everything again
            live = self._entries >= 0
            all_keys = np.concatenate([self._keys[live], self._spilled_keys])
            all_entries = np.concatenate([self._entries[live], self._spilled_entries])
            known = np.isin(all_keys, keys)
            self.__init__(4 * (self._count + len(keys)))
            self._insert(np.concatenate([all_keys[~known], keys]), np.concatenate([all_entries[~known], entries]))
            return
        slots = self._slots(keys)
        taken = self._entries[slots] >= 0
        home = taken & (self._keys[slots] == keys)  # known, at home: a new entry
        self._entries[slots[home]] = entries[home]
        free = np.flatnonzero(~taken)
        placed = free[np.unique(slots[free], return_index=True)[1]]  # one key per free slot
        self._keys[slots[placed]], self._entries[slots[placed]] = keys[placed], entries[placed]
        self._count += len(placed)
        spill = ~home
        spill[placed] = False
        self._spill(keys[spill], entries[spill])

    def _spill(self, keys: np.ndarray, entries: np.ndarray) -> None:
        """Add keys to the sorted spill list (replacing the entries of known ones)."""
        if not len(keys):
            return
        at = np.searchsorted(self._spilled_keys, keys)
        known = np.zeros(len(keys), bool)
        if len(self._spilled_keys):
            clipped = np.minimum(at, len(self._spilled_keys) - 1)
            known = self._spilled_keys[clipped] == keys
            self._spilled_entries[clipped[known]] = entries[known]
        order = np.argsort(keys[~known], kind="stable")
        self._spilled_keys = np.insert(self._spilled_keys, at[~known][order], keys[~known][order])
        self._spilled_entries = np.insert(self._spilled_entries, at[~known][order], entries[~known][order])
        self._count += int((~known).sum())


@dataclass(frozen=True)
class Found:
    """Answers found in memory for some of a vector's distinct inputs: their positions among
    those inputs, their answers (Arrow), and per answer whether the statement asking computed it."""

    positions: list[int]
    answers: pa.StructArray
    computed_now: np.ndarray


class FunctionAnswers:
    """In-memory answers of one (backend, Function, revision). Thread-safe.

    Inputs are found by the DuckDB `hash()` of the input value (an int, cheap to
    look up), confirmed against the exact input text, so a hash collision can only
    cost a slow lookup, never a wrong answer. Each answer also records the statement
    (`epoch`) whose call computed it, 0 when it came from elsewhere (the disk, another
    process): a repeat within the statement that computed an answer is dedup, not a
    cache hit, however DuckDB splits the rows into vectors."""

    def __init__(self, budget: MemoryBudget | None = None) -> None:
        self.lock = threading.RLock()
        self.budget = budget or MemoryBudget(DEFAULT_MEMORY_MB << 20)
        self._forget()

    @property
    def nbytes(self) -> int:
        """What this memory holds, in bytes (Arrow buffers, index arrays, canonical inputs)."""
        with self.lock:
            return (
                self._answers.nbytes
                + self._texts.nbytes
                + self._text_slots.nbytes
                + self._epochs.nbytes
                + self._by_hash.nbytes
                + self._canonical_bytes
            )

    def __len__(self) -> int:
        """How many answers are held."""
        return len(self._answers)

    def answer_rows(self, hashes: np.ndarray, inputs: pa.Array, epoch: int) -> tuple[pa.Array, int] | None:
        """The warm path: per row, its input's answer (NULL for NULL input), as a dictionary array
        over the answers the rows use, and how many rows have an answer statement `epoch`
        computed; None if any input is not in memory."""
        valid = None if inputs.null_count == 0 else inputs.is_valid().to_numpy(zero_copy_only=False)
        with self.lock:
            entries = self._by_hash.lookup(hashes)
            missing = entries < 0
            if valid is not None:
                missing &= valid
                entries[~valid] = 0  # any entry: NULL rows get a NULL answer below
            if missing.any():
                return None
            known = self._texts.take(entries)
            slots = self._text_slots.array[entries]
            computed_now = 0
            if epoch in self._computing_epochs:
                computed = self._epochs.array[slots] == epoch
                computed_now = int((computed if valid is None else computed & valid).sum())
            computing = epoch in self._computing_epochs  # those it computed keep their source
            if len(self._answers) <= len(inputs) and not computing:  # all of a small memory
                answers = self._read_back()
            elif len(self._answers) <= len(inputs):
                answers = from_cache(self._answers.whole(), self._epochs.array != epoch)
            else:  # only the answers this vector uses
                used, slots = np.unique(slots, return_inverse=True)
                answers = self._answers.take(used)
                answers = from_cache(answers, self._epochs.array[used] != epoch) if computing else from_cache(answers)
        if valid is None:
            if not known.equals(inputs):  # a hash collision: let the slow path sort it out
                return None
        elif pc.equal(known, inputs).false_count:
            return None
        return answers_by_row(slots, answers, None if valid is None else ~valid), computed_now

    def find_texts(self, texts: list[str], hashes: list[int], epoch: int) -> Found:
        """The answers of the input `texts` (with their DuckDB `hashes`) seen before."""
        with self.lock:
            entries = self._by_hash.lookup(np.array(hashes, np.uint64))
            candidates = np.flatnonzero(entries >= 0)
            if len(candidates):  # confirmed by text: a hash collision is not a match
                known = self._texts.take(entries[candidates])
                same = pc.equal(known, pa.array([texts[i] for i in candidates], pa.string()))
                candidates = candidates[same.to_numpy(zero_copy_only=False)]
            return self._found(candidates.tolist(), self._text_slots.array[entries[candidates]].tolist(), epoch)

    def find_canonicals(self, inputs: Iterable[tuple[int, str, int, str]], epoch: int) -> Found:
        """The answers of (position, text, hash, canonical) inputs whose canonical form is known
        (another text of the same input, e.g. its STRUCT's fields in another order); their texts
        are learned."""
        with self.lock:
            positions, slots = [], []
            for position, text, text_hash, canonical in inputs:
                slot = self._by_canonical.get(canonical)
                if slot is not None:
                    self._learn_text(text, text_hash, slot)
                    positions.append(position)
                    slots.append(slot)
            found = self._found(positions, slots, epoch)
        self.budget.charge(self)
        return found

    def add(
        self, texts: list[str], hashes: list[int], canonicals: list[str], answers: pa.StructArray, epochs: list[int]
    ) -> None:
        """Remember, per input text (with its DuckDB hash and canonical form), its answer (one
        Arrow row each) and the statement whose call computed it (0: it was not computed here).
        The texts are ones `find_texts` did not find (one met again is only mapped anew)."""
        with self.lock:
            first = len(self._answers)
            slots: list[int] = []
            new: list[int] = []  # the inputs whose canonical form has no answer yet
            for i, canonical in enumerate(canonicals):
                slot = self._by_canonical.get(canonical)
                if slot is None:
                    slot = self._by_canonical[canonical] = first + len(new)
                    self._canonical_bytes += sys.getsizeof(canonical) + _CANONICAL_OVERHEAD
                    new.append(i)
                slots.append(slot)
            if new:
                self._answers.extend(answers if len(new) == len(answers) else answers.take(new))
                computed_by = [epochs[i] for i in new]
                self._epochs.extend(computed_by)
                self._computing_epochs.update(filter(None, computed_by))
            for text, text_hash, slot in zip(texts, hashes, slots, strict=True):
                self._learn_text(text, text_hash, slot)
        self.budget.charge(self)

    def rows_for_canonicals(self, canonicals: list[str]) -> list[dict[str, Any] | None]:
        """Per canonical input, the answer held for it, or None (one `take` for them all)."""
        with self.lock:
            slots = [self._by_canonical.get(canonical) for canonical in canonicals]
            held = [slot for slot in slots if slot is not None]
            rows = iter(self._answers.take(np.array(held, np.int64)).to_pylist() if held else [])
        return [None if slot is None else next(rows) for slot in slots]

    def forget(self) -> None:
        """Drop every answer held (the disk layer keeps them)."""
        with self.lock:
            self._forget()
            self.budget.charge(self)

    def _read_back(self) -> pa.StructArray:
        """Every answer, saying `source` 'cache': made again only when answers were added (they
        are only ever appended, and forgetting starts over)."""
        if self._read_back_answers is None or len(self._read_back_answers) != len(self._answers):
            self._read_back_answers = from_cache(self._answers.whole())
        return self._read_back_answers

    def _found(self, positions: list[int], slots: list[int], epoch: int) -> Found:
        slot_array = np.array(slots, np.int64)
        computed_now = self._epochs.array[slot_array] == epoch
        return Found(positions, from_cache(self._answers.take(slot_array), ~computed_now), computed_now)

    def _learn_text(self, text: str, text_hash: int, slot: int) -> None:
        """Map a text not found by its hash to `slot` (a text met twice, by concurrent vectors, only
        takes an entry more)."""
        self._by_hash.set(text_hash, len(self._texts))
        self._texts.append(text)
        self._text_slots.append(slot)

    def _forget(self) -> None:
        self._by_hash = HashIndex()  # input hash -> text entry
        self._texts = _ArrowColumn(pa.string())  # text entry -> input text
        self._text_slots = _IntColumn(np.int32)  # text entry -> answer slot
        self._by_canonical: dict[str, int] = {}
        self._canonical_bytes = 0
        self._answers = _ArrowColumn(ANSWER_TYPE)
        self._read_back_answers: pa.StructArray | None = None  # `_read_back`'s last result
        self._epochs = _IntColumn(np.int64)  # answer slot -> the statement that computed it (0: none)
        self._computing_epochs: set[int] = set()  # statements that computed any answer here


class MemoryBudget:
    """The bytes all `FunctionAnswers` of the process may hold together: after a change that
    goes past the bound, the one holding the most forgets its answers. Its lock is only ever
    taken last (never while waiting for a `FunctionAnswers`), so it cannot deadlock."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._held: weakref.WeakKeyDictionary[FunctionAnswers, int] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        with self._lock:
            return sum(self._held.values())

    def charge(self, answers: FunctionAnswers) -> None:
        """Note what `answers` holds now; past the bound, make the largest holder forget."""
        nbytes = answers.nbytes
        with self._lock:
            self._held[answers] = nbytes
            if sum(self._held.values()) <= self.max_bytes:
                return
            largest = max(self._held, key=self._held.__getitem__)
            if not len(largest):
                return  # nothing left to forget: the empty structures alone are past the bound
        largest.forget()


class _IntColumn:
    """An append-only int column in a numpy array that doubles when full."""

    def __init__(self, kind: type[np.integer]) -> None:
        self._values = np.empty(16, kind)
        self._length = 0

    @property
    def array(self) -> np.ndarray:
        return self._values[: self._length]

    @property
    def nbytes(self) -> int:
        return self._values.nbytes

    def append(self, value: int) -> None:
        self.extend([value])

    def extend(self, values: list[int]) -> None:
        end = self._length + len(values)
        if end > len(self._values):
            grown = np.empty(max(end, 2 * len(self._values)), self._values.dtype)
            grown[: self._length] = self._values[: self._length]
            self._values = grown
        self._values[self._length : end] = values
        self._length = end


class _ArrowColumn:
    """An append-only Arrow column: new Python values wait in a short list and become a chunk
    when read (or when many are waiting); chunks merge like a binary counter (a new chunk
    merges with the last while that is no bigger), so appends cost O(log n) copies each and a
    read takes from a few chunks. No Python copy of the values is kept."""

    PENDING_MAX = 1024

    def __init__(self, kind: pa.DataType) -> None:
        self.kind = kind
        self._chunks: list[pa.Array] = []
        self._pending: list[Any] = []
        self._length = 0
        self._chunk_bytes = 0

    def __len__(self) -> int:
        return self._length

    @property
    def nbytes(self) -> int:
        """The chunks' bytes, and the waiting values' at the chunks' mean (256 before any chunk)."""
        stored = self._length - len(self._pending)
        return self._chunk_bytes + len(self._pending) * (self._chunk_bytes // stored if stored else 256)

    def append(self, value: Any) -> None:
        self._pending.append(value)
        self._length += 1
        if len(self._pending) >= self.PENDING_MAX:
            self._flush()

    def extend(self, values: pa.Array) -> None:
        """Append an Arrow array of values."""
        if not len(values):
            return
        self._flush()
        self._length += len(values)
        self._add_chunk(values)

    def whole(self) -> pa.Array:
        """Every value, as one array."""
        self._flush()
        if len(self._chunks) > 1:
            self._chunks = [pa.concat_arrays(self._chunks)]
        return self._chunks[0] if self._chunks else pa.array([], self.kind)

    def take(self, indices: np.ndarray) -> pa.Array:
        self._flush()
        if len(self._chunks) == 1:
            return self._chunks[0].take(indices)
        return pa.chunked_array(self._chunks, self.kind).take(indices).combine_chunks()

    def _flush(self) -> None:
        if not self._pending:
            return
        chunk = pa.array(self._pending, self.kind)
        self._pending = []
        self._add_chunk(chunk)

    def _add_chunk(self, chunk: pa.Array) -> None:
        while self._chunks and len(self._chunks[-1]) <= len(chunk):
            chunk = pa.concat_arrays([self._chunks.pop(), chunk])
        self._chunks.append(chunk)
        self._chunk_bytes = sum(c.nbytes for c in self._chunks)


def configured_memory_bytes() -> int:
    """The memory bound SUTRO_SQL_MEMORY_CACHE_MB sets (DEFAULT_MEMORY_MB when unset)."""
    setting = environment.get(environment.MEMORY_CACHE_MB)
    try:
        megabytes = float(setting) if setting is not None else DEFAULT_MEMORY_MB
    except ValueError:
        megabytes = -1.0
    if not 0 <= megabytes < float("inf"):
        raise ConfigurationError(
            f"{environment.MEMORY_CACHE_MB} must be a number of megabytes (0 or more), got {setting!r}"
        )
    return int(megabytes * (1 << 20))


#: The process's one budget; its bound is read again whenever a session first uses a Function.
_BUDGET = MemoryBudget(DEFAULT_MEMORY_MB << 20)
#: The live memories: one lives while a session uses it (the disk layer outlives them all).
_MEMORY: weakref.WeakValueDictionary[tuple[str, str, str, str], FunctionAnswers] = weakref.WeakValueDictionary()
_MEMORY_LOCK = threading.Lock()


def function_answers(cache_path: str, identity: str, function: str, revision: str) -> FunctionAnswers:
    """The process-wide memory of one (answer cache file, backend, Function, revision), shared by
    every live session over that cache, as the file itself is."""
    key = (cache_path, identity, function, revision)
    _BUDGET.max_bytes = configured_memory_bytes()
    with _MEMORY_LOCK:
        answers = _MEMORY.get(key)
        if answers is None:
            answers = _MEMORY[key] = FunctionAnswers(_BUDGET)
        return answers
