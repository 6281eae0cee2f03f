"""Deterministic parsers for typed values in free text: numbers, money, dates, emails, urls, phones.

Each parser returns every match in text order as a `Found` (the parsed value
and the exact span it came from), so the extractor can cite its evidence.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Found:
    value: Any
    span: str
    start: int


EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)\]]", re.IGNORECASE)
PHONE = re.compile(r"(?<![\w/.-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w/-])")

_SMALL = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "a dozen": 12,
    "dozen": 12,
}  # fmt: skip
_SCALES = {
    "hundred": 100, "thousand": 1_000, "k": 1_000, "million": 1_000_000, "m": 1_000_000, "mn": 1_000_000,
    "billion": 1_000_000_000, "bn": 1_000_000_000, "b": 1_000_000_000, "trillion": 1_000_000_000_000,
}  # fmt: skip
_WORD_NUMBER = "|".join(sorted(_SMALL, key=len, reverse=True))
_SCALE_WORD = r"(?:hundred|thousand|million|billion|trillion)\b"
_MONEY_SCALE = r"(?:hundred|thousand|million|billion|trillion|bn|mn|k|m|b)\b"
_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
NUMBER = re.compile(
    rf"(?<![\w.^/])(?P<sign>[-−])?(?:"
    rf"(?P<ratio>\d+/\d+)(?![\d/])"
    rf"|(?P<digits>{_DIGITS})(?:[eE](?P<exponent>[-+−]?\d+)|\s?[×x]\s?10\^?(?P<power>[-+−]?\d+))?"
    rf"(?:\s+(?P<fraction>\d+/\d+)|(?P<suffix>[kMBT])(?=\s|$))?(?P<half>\s+and\s+a\s+half)?"
    rf"|(?P<words>(?:{_WORD_NUMBER})(?:[\s-](?:{_WORD_NUMBER}))?)(?P<word_half>\s+and\s+a\s+half)?)"
    rf"(?:\s*(?P<scale>{_SCALE_WORD}))?(?P<percent>\s*%)?",
    re.IGNORECASE,
)
_SUFFIXES = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
_CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
_CURRENCY_CODES = r"USD|EUR|GBP|JPY|CHF|CAD|AUD|INR|CNY|dollars?|euros?|pounds?|yen"
MONEY = re.compile(
    rf"(?P<pre>[$€£¥₹]|\b(?:{_CURRENCY_CODES})\b\s?)\s?(?P<num>{_DIGITS})(?:\s*(?P<scale>{_MONEY_SCALE}))?"
    rf"|(?<![\w.-])(?P<num2>{_DIGITS})(?:\s*(?P<scale2>{_MONEY_SCALE}))?\s?(?P<post>(?:{_CURRENCY_CODES})\b|[€$£])",
    re.IGNORECASE,
)
_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
         ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"),
         ("nov", "november"), ("dec", "december")]
    )
    for m in names
}  # fmt: skip
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
DATE_PATTERNS = (
    (re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"), "ymd"),
    (re.compile(r"\b(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})\b"), "mdy"),
    (re.compile(r"\b(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})\b"), "dmy"),
    (
        re.compile(rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon>{_MONTH})\.?,?\s+(?P<y>\d{{4}})\b", re.I),
        "dMy",
    ),
    (re.compile(rf"\b(?P<mon>{_MONTH})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})\b", re.I), "Mdy"),
)


def _number_value(match: re.Match) -> float | None:
    if match["ratio"]:
        top, bottom = (int(part) for part in match["ratio"].split("/"))
        if not bottom:
            return None
        value = top / bottom
    elif match["digits"]:
        value = float(match["digits"].replace(",", ""))
        exponent = match["exponent"] or match["power"]
        if exponent:
            value *= 10.0 ** int(exponent.replace("−", "-"))
        if match["fraction"]:
            top, bottom = (int(part) for part in match["fraction"].split("/"))
            value += top / bottom if bottom else 0
        if match["suffix"]:
            value *= _SUFFIXES[match["suffix"]]
    else:
        parts = re.split(r"[\s-]", match["words"].lower())
        joined = " ".join(parts)
        value = float(_SMALL[joined]) if joined in _SMALL else float(sum(_SMALL.get(p, 0) for p in parts))
    if match["half"] or match["word_half"]:
        value += 0.5
    if match["scale"]:
        value *= _SCALES[match["scale"].lower()]
    if match["sign"]:
        value = -value
    return value


def numbers(text: str) -> list[Found]:
    """Numbers in digits ("1,500,000", "16.25", "2 1/2", "3.5 million") or words ("six", "twenty-one")."""
    taken = [(f.start, f.start + len(f.span)) for parse in (dates, emails, urls, phones) for f in parse(text)]
    found = []
    for match in NUMBER.finditer(text):
        inside = any(start <= match.start() < end for start, end in taken)
        if (match["digits"] or match["ratio"]) and (inside or _part_of_identifier(text, match)):
            continue
        value = _number_value(match)
        if value is not None:
            found.append(Found(_tidy(value), match.group(0).strip(), match.start()))
    return found


def _part_of_identifier(text: str, match: re.Match) -> bool:
    """Codes (ORD-1042, A4, 06F6) and ordinals (21st) are not quantities."""
    before = text[match.start() - 1] if match.start() else " "
    after = text[match.end() :]
    glued = before.isalpha() or (before == "-" and match.start() > 1 and text[match.start() - 2].isalnum())
    return glued or bool(re.match(r"(?:st|nd|rd|th)\b|[A-Za-z]+\d", after, re.IGNORECASE))


def money(text: str) -> list[Found]:
    """Money amounts with a currency symbol or code: "$49.99", "€1,200", "2,000 GBP", "$3 million"."""
    found = []
    for match in MONEY.finditer(text):
        digits = match["num"] or match["num2"]
        scale = match["scale"] or match["scale2"]
        value = float(digits.replace(",", "")) * (_SCALES[scale.lower()] if scale else 1)
        found.append(Found(_tidy(value), match.group(0).strip(), match.start()))
    return found


def dates(text: str) -> list[Found]:
    """Calendar dates as ISO strings: 2024-03-05, 3/5/2024 (US order), 5.3.2024, 5 March 2024, March 5th, 2024."""
    found = []
    for pattern, _ in DATE_PATTERNS:
        for match in pattern.finditer(text):
            month = _MONTHS[match["mon"].lower()] if "mon" in pattern.groupindex else int(match["m"])
            try:
                day = dt.date(int(match["y"]), month, int(match["d"]))
            except ValueError:
                continue
            found.append(Found(day.isoformat(), match.group(0), match.start()))
    found.sort(key=lambda f: f.start)
    return [f for i, f in enumerate(found) if not any(g.start == f.start for g in found[:i])]


def emails(text: str) -> list[Found]:
    return [Found(m.group(0), m.group(0), m.start()) for m in EMAIL.finditer(text)]


def urls(text: str) -> list[Found]:
    return [Found(m.group(0), m.group(0), m.start()) for m in URL.finditer(text)]


def phones(text: str) -> list[Found]:
    """Phone numbers with 7 to 15 digits in common groupings: "+1 (555) 123-4567", "020 7946 0958"."""
    found = []
    for match in PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 7 <= len(digits) <= 15 and not any(d.start <= match.start() < d.start + len(d.span) for d in dates(text)):
            found.append(Found(match.group(0).strip(), match.group(0).strip(), match.start()))
    return found


def shaped_like(text: str, samples: list[str]) -> list[Found]:
    """Tokens with the same character shape as one of `samples` (e.g. "ORD-1042" finds "ORD-77", "INV-778")."""
    shapes = {_shape(s) for s in samples if s}
    if not shapes:
        return []
    pattern = re.compile("|".join(f"(?:{s})" for s in sorted(shapes, key=len, reverse=True)))
    return [Found(m.group(0), m.group(0), m.start()) for m in pattern.finditer(text)]


def _shape(sample: str) -> str:
    """A regex for strings shaped like `sample`: letter runs keep their case, digit runs any length."""
    parts = []
    for run in re.finditer(r"[A-Z]+|[a-z]+|\d+|\s+|.", sample):
        token = run.group(0)
        if token.isdigit():
            parts.append(r"\d+")
        elif token.isupper() and token.isalpha():
            parts.append(f"[A-Z]{{{len(token)}}}" if len(token) <= 4 else "[A-Z]+")
        elif token.isalpha():
            parts.append("[A-Za-z]+")
        elif token.isspace():
            parts.append(r"\s+")
        else:
            parts.append(re.escape(token))
    return r"(?<![\w-])" + "".join(parts) + r"(?![\w-])"


def _tidy(value: float) -> float | int:
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value
