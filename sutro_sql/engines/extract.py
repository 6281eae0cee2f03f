"""Extraction for the embedded engine: one value per schema field, always valid against the schema.

How each field is filled (the first rule that applies):
- enum and boolean fields are classified with the few-shot classifier, using
  the field's description as the label description and the reviewed
  examples' values for that field as training data;
- a string with a `pattern` takes a match of that pattern (anchors dropped);
- numbers and integers are parsed from the text (money amounts when the field
  is about money);
- strings about emails, urls, phones or dates (by `format` or by name and
  description) use the matching parser; strings whose example values look
  like codes ("ORD-1042") find tokens of the same shape;
- other strings pick the sentence (of the first MAX_SPANS) most similar to
  the field's name and description, or null (when allowed) if none reaches
  SPAN_SIMILARITY_FLOOR;
- arrays collect every parsed match; nested objects recurse.
When a parser finds several candidates, the one whose surrounding words share
most with the field's name and description wins (the first on ties).

Per-field confidence: the classifier's probability for enum/boolean; 0.9 for a
single parsed candidate, 0.6 when several competed, 0.7 for null because
nothing matched; the span similarity for free text. The answer's confidence is
the mean over fields. Only the classifier's part is fitted; the fixed values
are stated heuristics, not calibrated probabilities. The output is checked with jsonschema before it is
returned; a field that fails is replaced by null or the simplest valid value,
and a row that still fails is a RowFailure, never an invalid answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema
import numpy as np

from . import parsers
from .base import EngineAnswer, RowFailure
from .encoder import Encoder
from .fewshot import FewShotClassifier

MAX_PARSE_CHARS = 20_000
MAX_SPANS = 12
SPAN_SIMILARITY_FLOOR = 0.80
CONTEXT_CHARS = 40
MONEY_WORDS = {"amount", "price", "cost", "total", "money", "fee", "charge", "salary", "revenue", "budget", "payment", "refund", "usd", "eur", "dollar", "currency"}  # fmt: skip
STOP_WORDS = {"the", "a", "an", "of", "in", "on", "to", "and", "or", "is", "for", "by", "with", "mentioned", "any", "this", "that", "it", "as"}  # fmt: skip


@dataclass(frozen=True)
class FieldValue:
    value: Any
    confidence: float
    evidence: str


def _types(schema: dict[str, Any]) -> tuple[str | None, bool]:
    """The schema's main JSON type and whether null is allowed."""
    kind = schema.get("type")
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        return (non_null[0] if non_null else None), "null" in kind
    if kind is None and "enum" in schema:
        return None, None in schema["enum"]
    if kind is None and "anyOf" in schema:
        options = [_types(option) for option in schema["anyOf"] if isinstance(option, dict)]
        non_null = [k for k, _ in options if k not in (None, "null")]
        return (non_null[0] if non_null else None), any(k == "null" or n for k, n in options)
    return kind, kind == "null"


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOP_WORDS and len(w) > 1}


def minimal_value(schema: dict[str, Any]) -> Any:
    """The simplest value valid against a field schema: null if allowed, else a typed default."""
    kind, nullable = _types(schema)
    if nullable:
        return None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        value = 0 if low is None or low <= 0 <= (high if high is not None else 1) else low
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            value = schema["exclusiveMinimum"] + 1
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    if kind == "array":
        item = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [minimal_value(item) for _ in range(int(schema.get("minItems", 0)))]
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: minimal_value(properties[name]) for name in schema.get("required", []) if name in properties}
    return ""  # may still break minLength or pattern: then the row fails rather than invent text


class Extractor:
    """An extraction Function's fitted state: one filler per field, built once per spec revision."""

    def __init__(self, schema: dict[str, Any], examples: list[str], outputs: list[Any], encoder: Encoder) -> None:
        self.schema = schema
        self.encoder = encoder
        self.validator = jsonschema.Draft202012Validator(schema)
        self._example_vectors, _ = encoder.encode_with_counts(examples) if examples else (np.zeros((0, 1)), [])
        self._span_fields = False  # set when a free-text field needs sentence embeddings
        self.fillers = self._fillers(schema, [o if isinstance(o, dict) else {} for o in outputs])

    def _fillers(self, schema: dict[str, Any], outputs: list[dict]) -> dict[str, Callable]:
        return {
            name: self._filler(name, prop, [o.get(name) for o in outputs])
            for name, prop in schema.get("properties", {}).items()
            if isinstance(prop, dict)
        }

    def _filler(self, name: str, prop: dict[str, Any], seen: list[Any]) -> Callable[[str, np.ndarray], FieldValue]:
        kind, nullable = _types(prop)
        about = f"{name.replace('_', ' ')}: {prop.get('description', '')}".strip(": ")
        if "enum" in prop and prop["enum"]:
            return self._choice(about, list(prop["enum"]), seen)
        if kind == "boolean":
            return self._choice(about, [True, False], seen)
        if kind == "object" and isinstance(prop.get("properties"), dict):
            inner = self._fillers(prop, [s if isinstance(s, dict) else {} for s in seen])
            return lambda text, vector: self._object(prop, inner, text, vector)
        if kind == "array":
            item = prop.get("items") if isinstance(prop.get("items"), dict) else {}
            finder = self._finder(name, item, [v for s in seen if isinstance(s, list) for v in s])
            return lambda text, vector: self._array(prop, item, finder, text)
        finder = self._finder(name, prop, seen)
        if finder is not None:
            return lambda text, vector: self._pick(about, text, finder(text))
        if kind == "string":
            self._span_fields = True
            return lambda text, vector: self._span(about, text, nullable)
        return lambda text, vector: FieldValue(minimal_value(prop), 0.1, "nothing to extract it from")

    def _finder(self, name: str, prop: dict[str, Any], seen: list[Any]) -> Callable[[str], list] | None:
        """A parser for the field's type and meaning, or None when only a free-text span fits."""
        kind, _ = _types(prop)
        words = _words(f"{name.replace('_', ' ')} {prop.get('description', '')} {prop.get('format', '')}")
        if kind in ("number", "integer"):
            parse = parsers.money if words & MONEY_WORDS else parsers.numbers
            if kind == "integer":
                return lambda text: [f for f in parse(text) if float(f.value).is_integer()]
            return parse
        if kind != "string":
            return None
        if "pattern" in prop:  # searched inside the text, so its anchors are dropped
            try:
                pattern = re.compile(prop["pattern"].removeprefix("^").removesuffix("$"))
            except re.error:
                pattern = None
            if pattern is not None:
                return lambda text: [parsers.Found(m.group(0), m.group(0), m.start()) for m in pattern.finditer(text)]
        fmt = prop.get("format", "")
        if fmt == "email" or "email" in words:
            return parsers.emails
        if fmt in ("uri", "url") or words & {"url", "website", "link", "uri"}:
            return parsers.urls
        if words & {"phone", "telephone", "mobile", "tel"}:
            return parsers.phones
        if fmt in ("date", "date-time") or "date" in words:
            return parsers.dates
        samples = [s for s in seen if isinstance(s, str) and re.search(r"\d", s)]
        samples += re.findall(r"\b(?=\S*\d)(?=\S*[A-Za-z])[\w-]+\b", prop.get("description", ""))
        if samples:
            return lambda text: parsers.shaped_like(text, samples)
        return None

    def _choice(self, about: str, options: list[Any], seen: list[Any]) -> Callable:
        """Classify the text into one of `options`, learning from the examples' values."""
        descriptions = [f"{about}: {_option_text(option)}" for option in options]
        vectors, _ = self.encoder.encode_with_counts(descriptions)
        known = [(i, options.index(value)) for i, value in enumerate(seen) if value in options and value is not None]
        model = FewShotClassifier(
            vectors,
            self._example_vectors[[i for i, _ in known]] if known else None,
            np.array([label for _, label in known], dtype=int) if known else None,
        )

        def fill(text: str, vector: np.ndarray) -> FieldValue:
            probabilities = model.predict_proba(vector[None])[0]
            best = int(np.argmax(probabilities))
            source = f"{len(known)} examples' values and the field description" if known else "the field description"
            evidence = f"classified ({probabilities[best]:.0%}) from {source}"
            return FieldValue(options[best], float(probabilities[best]), evidence)

        return fill

    def _pick(self, about: str, text: str, found: list[parsers.Found]) -> FieldValue:
        """The candidate whose nearby words share most with the field's name and description (first on ties)."""
        if not found:
            return FieldValue(None, 0.7, "not found in the text")
        if len(found) == 1:
            return FieldValue(found[0].value, 0.9, f"parsed from {found[0].span!r}")
        cues = _words(about)
        overlap = [
            len(cues & _words(text[max(0, f.start - CONTEXT_CHARS) : f.start + len(f.span) + CONTEXT_CHARS]))
            for f in found
        ]
        best = found[int(np.argmax(overlap))]
        return FieldValue(best.value, 0.6, f"parsed from {best.span!r} ({len(found)} candidates)")

    def _span(self, about: str, text: str, nullable: bool) -> FieldValue:
        spans = sentences(text)
        if not spans:
            return FieldValue(None, 0.7, "empty text")
        vectors, _ = self.encoder.encode_with_counts([about, *spans])
        similarity = vectors[1:] @ vectors[0]
        best = int(np.argmax(similarity))
        if nullable and similarity[best] < SPAN_SIMILARITY_FLOOR:
            return FieldValue(None, 0.6, f"no sentence close enough (best {similarity[best]:.2f})")
        return FieldValue(
            spans[best], float(np.clip(similarity[best], 0, 1)), f"closest sentence ({similarity[best]:.2f})"
        )

    def _array(self, prop: dict, item: dict, finder: Callable | None, text: str) -> FieldValue:
        values = [] if finder is None else list(dict.fromkeys(f.value for f in finder(text[:MAX_PARSE_CHARS])))
        values = values[: prop.get("maxItems", len(values))]
        return FieldValue(values, 0.8 if values else 0.6, f"{len(values)} matches in the text")

    def _object(self, schema: dict, fillers: dict[str, Callable], text: str, vector: np.ndarray) -> FieldValue:
        values = {name: fill(text, vector) for name, fill in fillers.items()}
        properties, required = schema.get("properties", {}), schema.get("required", [])
        output = {
            name: v.value
            for name, v in values.items()
            if v.value is not None or name in required or _types(properties[name])[1]
        }
        confidence = float(np.mean([v.confidence for v in values.values()])) if values else 1.0
        return FieldValue(output, confidence, "; ".join(f"{n}: {v.evidence}" for n, v in values.items()))

    def answer_all(
        self, texts: list[str], embeddings: np.ndarray, counts: list[int]
    ) -> list[EngineAnswer | RowFailure]:
        """Answers for a batch; the sentences free-text fields compare are embedded in one call first."""
        if self._span_fields:
            self.encoder.encode_with_counts([span for text in texts for span in sentences(text)])
        return [self.answer(t, e, c) for t, e, c in zip(texts, embeddings, counts, strict=True)]

    def answer(self, text: str, vector: np.ndarray, tokens: int) -> EngineAnswer | RowFailure:
        result = self._object(self.schema, self.fillers, text[:MAX_PARSE_CHARS], vector)
        output = self._repaired(result.value)
        errors = list(self.validator.iter_errors(output))
        if errors:
            return RowFailure(f"could not produce an answer valid against the output schema: {errors[0].message}")
        return EngineAnswer(
            output=output,
            confidence=result.confidence,
            rationale=result.evidence,
            input_tokens=tokens,
            output_tokens=len(output),
        )

    def _repaired(self, output: dict[str, Any]) -> dict[str, Any]:
        """Replace fields that break the schema with null or the simplest valid value."""
        properties = self.schema.get("properties", {})
        for error in self.validator.iter_errors(output):
            path = list(error.absolute_path)
            if path and path[0] in properties:
                value = output[path[0]]
                limit = properties[path[0]].get("maxLength")
                fits = isinstance(value, str) and error.validator == "maxLength" and len(path) == 1
                output[path[0]] = value[:limit] if fits else minimal_value(properties[path[0]])
            elif error.validator == "required":
                for name in self.schema.get("required", []):
                    if name not in output and name in properties:
                        output[name] = minimal_value(properties[name])
        return output


def sentences(text: str) -> list[str]:
    """The candidate spans for a free-text field: the text's first MAX_SPANS sentences."""
    return [s.strip() for s in re.split(r"(?<=[.!?;\n])\s+", text[:MAX_PARSE_CHARS]) if s.strip()][:MAX_SPANS]


def _option_text(option: Any) -> str:
    if option is True:
        return "yes"
    if option is False:
        return "no"
    return str(option).replace("_", " ")
