"""Extraction for the embedded engine: one value per schema field, always valid against the schema.

An input equal to a reviewed example (case and spacing ignored) gets that example's output
(REVIEWED_CONFIDENCE). Otherwise each field is filled by the first rule that applies:
- currency fields (named or described as a currency, or an enum whose options
  are currency codes, symbols or names) take the currency of the object's
  money amount, else a currency named in the text, as an ISO 4217 code or the
  enum option that stands for it; an enum falls back to the classifier below;
- boolean fields look for the concept their name states ("is_paid" -> "paid";
  "payment_received" -> "received" in a sentence that also says "payment")
  in the text and read its polarity ("unpaid", "has not been paid", "Paid:
  no" are false); the last statement wins. Only when the text never states
  the concept does the few-shot classifier decide, because its yes/no
  descriptions match the tone of the whole text, not the field's concept;
- enum fields whose reviewed examples all name their option in their text
  ("the team plan") take the option the text names (of several, the one with
  most cue words right beside it), else, like other enum fields (and booleans
  as above), are classified with the few-shot classifier, using the field's
  description as the label description and the reviewed examples' values for
  that field as training data;
- strings whose name (else description) names a person, company, place,
  product... (`entities.field_entity_labels`) take a named entity of that type
  (spaCy NER): the one an email address in the text names (a person by the
  address's words, a company by its domain), else the first or last one, as
  the reviewed examples show; null when the text has none;
- a string with a `pattern` takes a match of that pattern (anchors dropped);
- numbers and integers are parsed from the text (money amounts when the field
  is about money, or is the amount next to a currency field);
- strings about emails, urls, phones or dates (by `format`, else by name,
  else by description: a "date" described as "the date the email gives" is a
  date) use the matching parser; strings whose example values look
  like codes ("ORD-1042") find tokens of the same shape;
- other strings whose reviewed values are mostly named entities of one type
  are read as that type; the rest pick the sentence (of the first MAX_SPANS) most similar to
  the field's name and description, or null (when allowed) if none reaches
  SPAN_SIMILARITY_FLOOR;
- arrays collect every parsed match; nested objects recurse.
When a parser finds several candidates, the one whose surrounding words share
most with the field's name and description wins (the first on ties).

Per-field confidence: the classifier's probability for enum/boolean; 0.9 for a
single parsed candidate or a boolean whose statements agree, 0.6 when several
competed or disagreed, 0.7 for null because
nothing matched; the span similarity for free text. The answer's confidence is
the mean over fields. Only the classifier's part is fitted; the fixed values
are stated heuristics, not calibrated probabilities. The output is checked with jsonschema before it is
returned; a field that fails is replaced by null or the simplest valid value,
and a row that still fails is a RowFailure, never an invalid answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jsonschema
import numpy as np

from . import parsers
from .base import EngineAnswer, RowFailure
from .encoder import Encoder
from .entities import (
    ADDRESS_LABELS,
    TAGGER,
    address_match,
    address_parts,
    capitalized_phrases,
    field_entity_labels,
    named_by_address,
)
from .fewshot import FewShotClassifier

MAX_PARSE_CHARS = 20_000
MAX_SPANS = 12
SPAN_SIMILARITY_FLOOR = 0.80
CONTEXT_CHARS = 40
OPTION_CONTEXT_CHARS = 12  # an enum option named in the text is read with the words right beside it ("team plan")
REVIEWED_CONFIDENCE = 0.99  # a reviewed example asked back: its output is ground truth
SENTENCE_END = r"(?<=[.!?;\n])\s+"
CURRENCY_WORDS = {"currency", "currencies", "ccy"}
CURRENCY_DESCRIPTION_WORDS = 3  # a description that opens with "The currency ..." or "ISO currency code"
PREPOSITIONS = {"in", "on", "at", "by", "for", "to", "with", "within", "from", "of", "after", "before", "via", "per", "over", "under"}  # fmt: skip
BOOLEAN_FILLERS = {"is", "are", "was", "were", "be", "been", "has", "have", "had", "did", "does", "do", "can", "could", "should", "will", "would", "needs", "need", "requires", "whether", "if", "any", "flag"}  # fmt: skip
MONEY_WORDS = {"amount", "price", "cost", "total", "money", "fee", "charge", "salary", "revenue", "budget", "payment", "refund", "usd", "eur", "dollar", "currency"}  # fmt: skip
STOP_WORDS = {"the", "a", "an", "of", "in", "on", "to", "and", "or", "is", "for", "by", "with", "mentioned", "any", "this", "that", "it", "as"}  # fmt: skip


@dataclass(frozen=True)
class FieldValue:
    value: Any
    confidence: float
    evidence: str
    found: parsers.Found | None = None  # the parsed candidate the value came from


@dataclass(frozen=True)
class ObjectFields:
    """An object's fillers, and which currency field reports the currency of which money field."""

    fillers: dict[str, Callable]
    currency_of: dict[str, str]  # currency field -> money field


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


def _field_words(name: str, prop: dict[str, Any]) -> set[str]:
    return _words(f"{name.replace('_', ' ')} {prop.get('description', '')} {prop.get('format', '')}")


def currency_options(prop: dict[str, Any]) -> dict[str, Any]:
    """ISO code -> enum option, for the options that name a currency ("USD", "€", "Euro")."""
    options = {}
    for option in prop.get("enum") or []:
        code = parsers.currency_code(option) if isinstance(option, str) else None
        if code is not None:
            options.setdefault(code, option)
    return options


def is_currency_field(name: str, prop: dict[str, Any]) -> bool:
    """A string or enum field that holds a currency: by its enum options, or by its name or the first
    words of its description ("The currency of the amount", not "... about fees or currency")."""
    kind, _ = _types(prop)
    if "enum" in prop:
        mapped = len(currency_options(prop))
        return mapped >= 2 and mapped * 2 >= len([o for o in prop["enum"] if o is not None])
    opening = " ".join(str(prop.get("description", "")).split()[:CURRENCY_DESCRIPTION_WORDS])
    return kind == "string" and bool((_words(name.replace("_", " ")) | _words(opening)) & CURRENCY_WORDS)


def boolean_concept(name: str) -> tuple[str | None, list[str], bool]:
    """What a boolean field's name asserts: its head word, the last content word before any preposition
    ("is_paid" -> "paid", "payment_received" -> "received", "paid_in_full" -> "paid"); the name's other
    content words, which must share the head's sentence ("payment", "full"); and whether the name
    negates it ("is_not_paid")."""
    words = re.findall(r"[a-z]+", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower())
    negated = sum(w in parsers.NEGATIONS for w in words) % 2 == 1
    content = [w for w in words if w not in BOOLEAN_FILLERS | parsers.NEGATIONS | PREPOSITIONS and len(w) >= 3]
    before = next((i for i, w in enumerate(words) if w in PREPOSITIONS and set(words[:i]) & set(content)), None)
    heads = [w for w in words[:before] if w in content]
    if not heads:
        return None, [], negated
    return heads[-1], [w for w in content if w != heads[-1]], negated


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
        self._example_texts = examples
        self._reviewed = {
            normalized(text): output
            for text, output in zip(examples, outputs, strict=True)
            if isinstance(output, dict) and self.validator.is_valid(output)
        }
        self._entity_fields = False  # set when a field reads named entities
        self._example_vectors, _ = encoder.encode_with_counts(examples) if examples else (np.zeros((0, 1)), [])
        self._span_fields = False  # set when a free-text field needs sentence embeddings
        self.fields = self._fillers(schema, [o if isinstance(o, dict) else {} for o in outputs])

    def _fillers(self, schema: dict[str, Any], outputs: list[dict]) -> ObjectFields:
        """Fillers for an object's properties; a currency field is paired with the money field beside it
        (the first one about money, else the first number), which is then parsed as money."""
        properties = {name: prop for name, prop in schema.get("properties", {}).items() if isinstance(prop, dict)}
        currencies = [name for name, prop in properties.items() if is_currency_field(name, prop)]
        numbers = [name for name, prop in properties.items() if _types(prop)[0] in ("number", "integer")]
        about_money = [name for name in numbers if _field_words(name, properties[name]) & MONEY_WORDS]
        amount = (about_money or numbers or [None])[0] if currencies else None
        fillers = {
            name: self._filler(name, prop, [o.get(name) for o in outputs], money=name == amount)
            for name, prop in properties.items()
        }
        return ObjectFields(fillers, {name: amount for name in currencies} if amount else {})

    def _filler(
        self, name: str, prop: dict[str, Any], seen: list[Any], money: bool = False
    ) -> Callable[..., FieldValue]:
        kind, nullable = _types(prop)
        about = f"{name.replace('_', ' ')}: {prop.get('description', '')}".strip(": ")
        if is_currency_field(name, prop):
            fallback = self._choice(about, list(prop["enum"]), seen) if "enum" in prop else None
            return self._currency(about, prop, nullable, fallback)
        if "enum" in prop and prop["enum"]:
            choice = self._choice(about, list(prop["enum"]), seen)
            return self._named_option(about, list(prop["enum"]), seen, choice) or choice
        if kind == "boolean":
            return self._boolean(name, self._choice(about, [True, False], seen))
        if kind == "object" and isinstance(prop.get("properties"), dict):
            inner = self._fillers(prop, [s if isinstance(s, dict) else {} for s in seen])
            return lambda text, vector: self._object(prop, inner, text, vector)
        if kind == "array":
            item = prop.get("items") if isinstance(prop.get("items"), dict) else {}
            finder = self._finder(name, item, [v for s in seen if isinstance(s, list) for v in s])
            return lambda text, vector: self._array(prop, item, finder, text)
        labels = field_entity_labels(name, prop) if kind == "string" and "pattern" not in prop else None
        if labels:
            return self._entity(prop, set(labels), seen, nullable)
        finder = self._finder(name, prop, seen, money)
        if finder is not None:
            return lambda text, vector: self._pick(about, text, finder(text))
        entity = self._entity(prop, set(), seen, nullable) if kind == "string" else None
        if entity is not None:
            return entity
        if kind == "string":
            self._span_fields = True
            return lambda text, vector: self._span(about, text, nullable)
        return lambda text, vector: FieldValue(minimal_value(prop), 0.1, "nothing to extract it from")

    def _finder(
        self, name: str, prop: dict[str, Any], seen: list[Any], money: bool = False
    ) -> Callable[[str], list] | None:
        """A parser for the field's type and meaning, or None when only a free-text span fits."""
        kind, _ = _types(prop)
        words = _field_words(name, prop)
        if kind in ("number", "integer"):
            parse = parsers.money if money or words & MONEY_WORDS else parsers.numbers
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
        if is_currency_field(name, prop):  # the items of an array of currencies
            return parsers.currencies
        typed = _typed_parser(prop.get("format", ""), _field_words(name, {}))  # the name first: a "date" field
        typed = typed or _typed_parser("", words)  # described as "the date the email gives" is a date
        if typed is not None:
            return typed
        samples = [s for s in seen if isinstance(s, str) and re.search(r"\d", s)]
        samples += re.findall(r"\b(?=\S*\d)(?=\S*[A-Za-z])[\w-]+\b", prop.get("description", ""))
        if samples:
            return lambda text: parsers.shaped_like(text, samples)
        return None

    def _entity(self, prop: dict[str, Any], labels: set[str], seen: list[Any], nullable: bool) -> Callable | None:
        """A filler from named entities, when the field's name or description maps to entity types
        (`labels`, from `entities.field_entity_labels`) or, for a field no parser reads, when most
        reviewed examples' values were tagged as entities of one type.

        The examples also pick which entity of those types to take: the first or the last in
        the text (a greeting may name the recipient, a signature the sender); the first on ties.
        With none of those types in the text the field is null, never a neighbouring value."""
        pairs = [(t, v) for t, v in zip(self._example_texts, seen, strict=False) if isinstance(v, str) and v.strip()]
        tagged = TAGGER.entities([t for t, _ in pairs]) if pairs else []
        evidence = [{e.label for e in ents if e.text == value} for (_, value), ents in zip(pairs, tagged, strict=True)]
        if not labels:  # only when most examples' values are entities of one type
            votes = [label for found in evidence for label in found]
            top = max(set(votes), key=votes.count) if votes else None
            if top is None or votes.count(top) * 2 <= len(pairs):
                return None
            labels = {top}
        first = last = 0
        for (_, value), ents in zip(pairs, tagged, strict=True):
            matching = [e.text for e in ents if e.label in labels]
            first += bool(matching) and matching[0] == value
            last += bool(matching) and matching[-1] == value
        position = -1 if last > first else 0
        self._entity_fields = True
        kinds = "/".join(sorted(labels))

        by_address = next((label for label in ("PERSON", "ORG") if label in labels), None)

        def fill(text: str, vector: np.ndarray) -> FieldValue:
            tagged = TAGGER.entities([text])[0] + (capitalized_phrases(text) if by_address == "ORG" else [])
            local, domains = address_parts(text)
            named = [
                e
                for e in tagged
                if by_address and e.label in labels | ADDRESS_LABELS and named_by_address(e, local, domains, by_address)
            ]
            if named:
                entity = named[0] if by_address == "PERSON" else max(named, key=lambda e: address_match(e, domains))
                return FieldValue(
                    entity.text, 0.9, f"the {entity.label} entity {entity.text!r}, named by an email address"
                )
            found = [e for e in tagged if e.label in labels]
            if not found:
                value = None if nullable else minimal_value(prop)
                return FieldValue(value, 0.7, f"no {kinds} entity in the text")
            entity = found[position]
            confidence = 0.9 if len({e.text for e in found}) == 1 else 0.6
            where = "first" if position == 0 else "last"
            return FieldValue(entity.text, confidence, f"the {where} {entity.label} entity {entity.text!r}")

        return fill

    def _named_option(self, about: str, options: list[Any], seen: list[Any], classify: Callable) -> Callable | None:
        """For an enum whose reviewed examples all name their value in their text ("the team plan"):
        the option the text names as a word (of several, the one with most cue words right beside it: the
        field's words and those beside the examples' values), the classifier when it names none."""
        words = {o: re.compile(rf"\b{re.escape(str(o))}\b", re.I) for o in options if isinstance(o, str) and o}
        known = [(t, v) for t, v in zip(self._example_texts, seen, strict=False) if v in words]
        if not known or not all(words[v].search(t) for t, v in known):
            return None
        cues = _words(about)  # and the words beside the examples' values ("15 enterprise seats")
        for text, value in known:
            match = words[value].search(text)
            cues |= _words(text[max(0, match.start() - OPTION_CONTEXT_CHARS) : match.end() + OPTION_CONTEXT_CHARS])
        cues -= {_option_text(o).lower() for o in options}

        def fill(text: str, vector: np.ndarray) -> FieldValue:
            named = [
                parsers.Found(o, m.group(0), m.start()) for o, pattern in words.items() for m in pattern.finditer(text)
            ]
            if not named:
                return classify(text, vector)
            nearby = [len(cues & _words(text[max(0, f.start - OPTION_CONTEXT_CHARS) : f.start + len(f.span) + OPTION_CONTEXT_CHARS])) for f in named]  # fmt: skip
            best = named[int(np.argmax(nearby))]
            confidence = 0.9 if len({f.value for f in named}) == 1 else 0.6
            return FieldValue(best.value, confidence, f"the text names {best.value!r} at {best.span!r}", best)

        return fill

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

    def _currency(self, about: str, prop: dict[str, Any], nullable: bool, fallback: Callable | None) -> Callable:
        """The currency of the paired amount, else the currency the text names closest to the field's words;
        as the enum option for that code when the field is an enum (never a value outside it), else as the
        code or its lower case, whichever the field's schema accepts."""
        options = currency_options(prop) if "enum" in prop else None
        accepts = jsonschema.Draft202012Validator(prop).is_valid

        def written(code: str) -> str | None:
            if options is not None:
                return options.get(code)
            return next((form for form in (code, code.lower()) if accepts(form)), None)

        def fill(text: str, vector: np.ndarray, amount: parsers.Found | None = None) -> FieldValue:
            if amount is not None and amount.currency and written(amount.currency) is not None:
                return FieldValue(written(amount.currency), 0.9, f"the currency of {amount.span!r}", amount)
            named = parsers.currencies(text)
            picked = self._pick(about, text, [f for f in named if written(f.value) is not None])
            if picked.value is not None:
                return replace(picked, value=written(picked.value))
            if fallback is None:
                return picked
            if named and nullable:
                return FieldValue(None, 0.7, f"{named[0].span!r} names none of the options", named[0])
            return fallback(text, vector)

        return fill

    def _boolean(self, name: str, classify: Callable[[str, np.ndarray], FieldValue]) -> Callable:
        """The polarity of the field's concept where the text states it; the classifier when it never does."""
        concept, companions, negated_name = boolean_concept(name)

        def fill(text: str, vector: np.ndarray) -> FieldValue:
            statements = parsers.polarity(text, concept, companions) if concept else []
            if not statements:
                return classify(text, vector)
            last = statements[-1]
            agree = all(s.value == last.value for s in statements)
            verb = "states" if last.value else "negates"
            evidence = f"the text {verb} {concept!r} at {last.span!r}" + ("" if agree else " (last of conflicting)")
            return FieldValue(last.value != negated_name, 0.9 if agree else 0.6, evidence, last)

        return fill

    def _pick(self, about: str, text: str, found: list[parsers.Found]) -> FieldValue:
        """The candidate whose nearby words share most with the field's name and description (first on ties)."""
        if not found:
            return FieldValue(None, 0.7, "not found in the text")
        if len(found) == 1:
            return FieldValue(found[0].value, 0.9, f"parsed from {found[0].span!r}", found[0])
        cues = _words(about)
        overlap = [len(cues & _words(_context(text, f))) for f in found]
        best = found[int(np.argmax(overlap))]
        return FieldValue(best.value, 0.6, f"parsed from {best.span!r} ({len(found)} candidates)", best)

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

    def _object(self, schema: dict, fields: ObjectFields, text: str, vector: np.ndarray) -> FieldValue:
        """Each field filled; currency fields last, from the amount their money field picked."""
        filled = {name: fill(text, vector) for name, fill in fields.fillers.items() if name not in fields.currency_of}
        for name, amount in fields.currency_of.items():
            filled[name] = fields.fillers[name](text, vector, filled[amount].found)
        values = {name: filled[name] for name in fields.fillers}
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
        if self._entity_fields:
            TAGGER.entities(texts)
        if self._span_fields:
            self.encoder.encode_with_counts([span for text in texts for span in sentences(text)])
        return [self.answer(t, e, c) for t, e, c in zip(texts, embeddings, counts, strict=True)]

    def answer(self, text: str, vector: np.ndarray, tokens: int) -> EngineAnswer | RowFailure:
        reviewed = self._reviewed.get(normalized(text))
        if reviewed is not None:
            return EngineAnswer(
                output=dict(reviewed),
                confidence=REVIEWED_CONFIDENCE,
                rationale="the input matches a reviewed example; its reviewed output is the answer",
                input_tokens=tokens,
                output_tokens=len(reviewed),
            )
        result = self._object(self.schema, self.fields, text[:MAX_PARSE_CHARS], vector)
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


def _typed_parser(fmt: str, words: set[str]) -> Callable[[str], list[parsers.Found]] | None:
    """The parser a string field's format or words call for: emails, urls, phones or dates."""
    if fmt == "email" or "email" in words:
        return parsers.emails
    if fmt in ("uri", "url") or words & {"url", "website", "link", "uri"}:
        return parsers.urls
    if words & {"phone", "telephone", "mobile", "tel"}:
        return parsers.phones
    if fmt in ("date", "date-time") or "date" in words:
        return parsers.dates
    return None


def normalized(text: str) -> str:
    """The form in which an input is compared with the reviewed examples: case and spacing ignored."""
    return " ".join(text.lower().split())


def _context(text: str, found: parsers.Found) -> str:
    """Up to CONTEXT_CHARS either side of a candidate, within its sentence."""
    before = text[max(0, found.start - CONTEXT_CHARS) : found.start]
    after = text[found.start + len(found.span) : found.start + len(found.span) + CONTEXT_CHARS]
    return re.split(SENTENCE_END, before)[-1] + found.span + re.split(SENTENCE_END, after)[0]


def sentences(text: str) -> list[str]:
    """The candidate spans for a free-text field: the text's first MAX_SPANS sentences."""
    return [s.strip() for s in re.split(SENTENCE_END, text[:MAX_PARSE_CHARS]) if s.strip()][:MAX_SPANS]


def _option_text(option: Any) -> str:
    if option is True:
        return "yes"
    if option is False:
        return "no"
    return str(option).replace("_", " ")
