"""Deterministic parsers for typed values in free text: numbers, money, dates, emails, urls, phones,
currencies, and the polarity of a concept word ("paid" / "unpaid" / "not paid").

Each parser returns every match in text order as a `Found` (the parsed value
and the exact span it came from), so the extractor can cite its evidence.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Found:
    value: Any
    span: str
    start: int
    currency: str | None = None  # ISO 4217 code, for money amounts


EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)\]]", re.IGNORECASE)
CLOCK = re.compile(r"\b\d{1,2}(?::\d{2}){1,2}(?:\s?[ap]\.?m\b\.?)?|\b\d{1,2}(?:[.:]\d{2})?\s?[ap]\.?m\b\.?", re.I)
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
    "tn": 1_000_000_000_000, "t": 1_000_000_000_000,
}  # fmt: skip
_WORD_NUMBER = "|".join(sorted(_SMALL, key=len, reverse=True))
_WORDS_NUMBER = rf"(?:{_WORD_NUMBER})(?:[\s-](?:{_WORD_NUMBER}))?"  # "twenty-one", "a dozen"
_SCALE_WORD = r"(?:hundred|thousand|million|billion|trillion)\b"
_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:\.\d{3})+,\d+|\d+(?:\.\d+)?|\.\d+"  # "1.200,50": European
NUMBER = re.compile(
    rf"(?<![\w.^/])(?P<sign>[-−])?(?:"
    rf"(?P<ratio>\d+/\d+)(?![\d/])"
    rf"|(?P<digits>{_DIGITS})(?:[eE](?P<exponent>[-+−]?\d+)|\s?[×x]\s?10\^?(?P<power>[-+−]?\d+))?"
    rf"(?:\s+(?P<fraction>\d+/\d+)|(?P<suffix>(?-i:[kKMBT]))(?![\w.,]?\w))?(?P<half>\s+and\s+a\s+half)?"
    rf"|(?P<words>{_WORDS_NUMBER})(?P<word_half>\s+and\s+a\s+half)?)"
    rf"(?:\s*(?P<scale>{_SCALE_WORD}))?(?P<percent>\s*%)?",
    re.IGNORECASE,
)
_SUFFIXES = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
ISO_4217 = frozenset(
    "AED AFN AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF "
    "CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD "
    "HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL "
    "LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP "
    "PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SRD SSP STN SVC SYP SZL THB TJS TMT TND "
    "TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL".split()
)  # active codes, less ALL, CUP, SOS and TOP, which are more often capitalized words than currencies
MAJOR_CODES = "USD|EUR|GBP|JPY|CHF|CAD|AUD|NZD|INR|CNY|HKD|SGD|SEK|NOK|DKK|MXN|BRL|ZAR|KRW|RUB|TRY|PLN"
CASELESS_CODES = (
    "USD|EUR|GBP|JPY|CHF|AUD|NZD|INR|CNY|HKD|SGD|SEK|NOK|DKK|MXN|BRL|ZAR|KRW|PLN"  # not "cad", "try", "rub"
)
# Symbols are read as their most common currency: "$" is USD, "¥" JPY, "kr" is left out (SEK, NOK, DKK).
CURRENCY_SYMBOLS = {
    "US$": "USD", "CA$": "CAD", "C$": "CAD", "AU$": "AUD", "A$": "AUD", "NZ$": "NZD", "HK$": "HKD",
    "S$": "SGD", "R$": "BRL", "$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "Rs.": "INR",
    "Rs": "INR", "₩": "KRW", "₽": "RUB", "₺": "TRY", "₪": "ILS", "₫": "VND", "₱": "PHP", "฿": "THB",
    "₴": "UAH", "₦": "NGN", "zł": "PLN",
}  # fmt: skip
# Currency words, singular and plural; "dollars" alone is USD, "pesos" MXN, "francs" CHF.
CURRENCY_WORDS = {
    "dollar": "USD", "buck": "USD", "euro": "EUR", "pound": "GBP", "sterling": "GBP",
    "yen": "JPY", "rupee": "INR", "yuan": "CNY", "renminbi": "CNY", "franc": "CHF", "peso": "MXN",
    "ruble": "RUB", "rouble": "RUB", "real": "BRL", "reais": "BRL", "rand": "ZAR", "zloty": "PLN",
    "lira": "TRY", "shekel": "ILS", "won": "KRW",
}  # fmt: skip
DOLLAR_COUNTRIES = {
    "us": "USD", "u.s.": "USD", "american": "USD", "canadian": "CAD", "australian": "AUD", "new zealand": "NZD",
    "hong kong": "HKD", "singapore": "SGD",
}  # fmt: skip
COMMA_DECIMAL_CURRENCIES = {"EUR", "BRL", "TRY", "IDR", "VND", "ARS", "CLP", "COP", "DKK", "ISK", "RON"}
_SYMBOL = "|".join(re.escape(s) for s in sorted(CURRENCY_SYMBOLS, key=len, reverse=True))
_CODE = rf"(?:(?i:{CASELESS_CODES})|(?-i:{'|'.join(sorted(ISO_4217))}))(?![A-Za-z])"
_WORDS_AFTER = (  # words that follow an amount; "real", "rand" and "won" only as codes, they are common words
    rf"(?:(?:{'|'.join(re.escape(c) for c in DOLLAR_COUNTRIES)})\s+)?dollars?"
    r"|bucks?|euros?|pounds?(?:\s+sterling)?|yen|rupees?|yuan|renminbi|francs?|pesos?|r[ou]ubles?|zloty|lira|shekels?"
)
# An amount: "1,200.50" (US), "1.200,50" and "1.200.000" (European), "1'200.50" (Swiss), "12,50", "1200.5", ".5".
_AMOUNT = (
    r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d{1,3}(?:['’]\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+"
)
_SPACED_AMOUNT = r"\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?:[.,]\d+)?(?![\d.,])"  # "10 000", only before a currency
_RANGE_TO = r"\s?[-–—]\s?|\s+to\s+"
_MONEY_SCALE = r"(?:hundred|thousand|million|billion|trillion|bn|mn|tn|k|m|b|(?-i:T))\b"
MONEY = re.compile(
    rf"(?<![\w.,])(?P<sign>[-−])?(?P<pre>(?<![A-Za-z])(?:{_SYMBOL})|\b{_CODE})\s?(?P<sign2>[-−])?"
    rf"(?P<num>{_AMOUNT})(?![\d.,]?\d)(?:\s*(?P<scale>{_MONEY_SCALE}))?"
    rf"(?:\s?[-–—]\s?(?P<high>{_AMOUNT})(?:\s*(?P<high_scale>{_MONEY_SCALE}))?)?"
    rf"|(?<![\w.,])(?:(?P<sign3>[-−])|(?<![-−]))(?:(?P<low>{_AMOUNT})(?:\s*(?P<low_scale>{_MONEY_SCALE}))?(?:{_RANGE_TO}))?"
    rf"(?:(?P<num2>{_SPACED_AMOUNT}|{_AMOUNT})|\b(?P<words>{_WORDS_NUMBER}))(?:\s*(?P<scale2>{_MONEY_SCALE}))?\s?"
    rf"(?P<post>(?:{_SYMBOL})(?!\s?\d)|{_CODE}|\b(?:{_WORDS_AFTER})\b)",
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
    (re.compile(r"\b(?P<y>\d{4})([-/])(?P<m>\d{1,2})\2(?P<d>\d{1,2})(?!\d)"), "ymd"),  # "2024-03-05T10:00" too
    (re.compile(r"\b(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})\b"), "mdy"),  # d/m/y when the first is over 12
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
        value = amount_value(match["digits"])
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
    """Numbers in digits ("1,500,000", "16.25", "2 1/2", "3.5 million") or words ("six", "twenty-one");
    money amounts count with their sign and format ("($99.99)" is -99.99, "10 000 dollars" 10000);
    clock times ("2 pm", "10:30") are not quantities."""
    amounts = money(text)
    spans = [(f.start, f.start + len(f.span)) for parse in (dates, emails, urls, phones) for f in parse(text)]
    taken = _covering(
        spans + [(f.start, f.start + len(f.span)) for f in amounts] + [m.span() for m in CLOCK.finditer(text)]
    )
    found = list(amounts)
    for match in NUMBER.finditer(text):
        if taken(match.start()):
            continue
        if (match["digits"] or match["ratio"]) and _part_of_identifier(text, match):
            continue
        value = _number_value(match)
        if value is not None:
            found.append(Found(_tidy(value), match.group(0).strip(), match.start()))
    return sorted(found, key=lambda f: f.start)


def _covering(spans: list[tuple[int, int]]) -> Callable[[int], bool]:
    """Whether a position falls inside any of `spans`: merged once, then a binary search per position."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    starts = [start for start, _ in merged]

    def covers(position: int) -> bool:
        index = bisect.bisect_right(starts, position) - 1
        return index >= 0 and position < merged[index][1]

    return covers


def _part_of_identifier(text: str, match: re.Match) -> bool:
    """Codes (ORD-1042, A4, 06F6) and ordinals (21st) are not quantities; the 20 of a range "10-20" is."""
    before = text[match.start() - 1] if match.start() else " "
    after = text[match.end() :]
    glued = before.isalpha() or (before == "-" and bool(re.search(r"[A-Za-z][\w-]*-$", text[: match.start()])))
    return glued or bool(re.match(r"(?:st|nd|rd|th)\b|[A-Za-z]+\d", after, re.IGNORECASE))


def amount_value(digits: str, currency: str | None = None) -> float:
    """The value of a written amount, reading its separators: the last of "," and "." is the decimal point
    when both appear ("1,200.50", "1.200,50"); a lone "," is a decimal comma unless it groups thousands
    ("12,50" vs "1,200"); a lone "." groups thousands only when repeated ("1.200.000") or, for a currency
    written with a decimal comma (EUR, BRL, ...), when exactly three digits follow ("€1.200")."""
    digits = re.sub(r"[\s'’]", "", digits)
    if "," in digits and "." in digits:
        decimal = "," if digits.rfind(",") > digits.rfind(".") else "."
        return float(digits.replace("." if decimal == "," else ",", "").replace(",", "."))
    if "," in digits:
        grouped = re.fullmatch(r"\d{1,3}(?:,\d{3})+", digits)
        return float(digits.replace(",", "") if grouped else digits.replace(",", "."))
    if digits.count(".") > 1 or (currency in COMMA_DECIMAL_CURRENCIES and re.fullmatch(r"\d{1,3}\.\d{3}", digits)):
        return float(digits.replace(".", ""))
    return float(digits)


def money(text: str) -> list[Found]:
    """Money amounts with their currency (`Found.currency`, ISO 4217): "$49.99", "€1.200,50", "EUR 300",
    "300EUR", "2,000 GBP", "20 dollars", "$3 million", negatives ("-$5", "$-5", "($5)") and ranges
    ("$10-20", "10 to 20 EUR": one amount per end)."""
    found = []
    for match in MONEY.finditer(text):
        currency = currency_code(match["pre"] or match["post"])
        sign = -1 if match["sign"] or match["sign2"] or match["sign3"] or _in_parentheses(text, match) else 1
        amount = next(group for group in ("num", "num2", "words") if match[group])
        ends = [
            (match[amount], match["scale"] or match["scale2"], match.start(amount)),
            (match["high"], match["high_scale"], match.start("high")),
            (match["low"], match["low_scale"], match.start("low")),
        ]
        ends = [(digits, scale, start) for digits, scale, start in ends if digits]
        stated = next((scale for _, scale, _ in ends if scale), None)  # "$3-5 million": both ends in millions
        for index, (digits, scale, start) in enumerate(sorted(ends, key=lambda end: end[2])):
            scale = scale or stated
            value = _written_value(digits, None if scale else currency) * (_SCALES[scale.lower()] if scale else 1)
            found.append(Found(_tidy(sign * value), match.group(0), start if index else match.start(), currency))
    return found


def _written_value(written: str, currency: str | None) -> float:
    """An amount in digits (read by `amount_value`) or in words ("twenty-one")."""
    if written[0].isdigit() or written[0] in ".,":
        return amount_value(written, currency)
    return _number_value(NUMBER.fullmatch(written))


def _in_parentheses(text: str, match: re.Match) -> bool:
    """Accounting notation: "($99.99)" is a negative amount."""
    return text[match.start() - 1 : match.start()] == "(" and text[match.end() : match.end() + 1] == ")"


def currency_code(name: str | None) -> str | None:
    """The ISO 4217 code a symbol, code or currency name stands for ("€", "eur", "Euros", "US dollars"), or None."""
    key = " ".join((name or "").split())
    if key in CURRENCY_SYMBOLS:
        return CURRENCY_SYMBOLS[key]
    if key.upper() in ISO_4217:
        return key.upper()
    words = key.lower()
    if words.endswith("dollar") or words.endswith("dollars"):
        country = words.rsplit(" ", 1)[0] if " " in words else ""
        return DOLLAR_COUNTRIES.get(country, "USD" if not country else None)
    last = words.rsplit(" ", 1)[-1]  # "pounds sterling"
    for word in (words, words.removesuffix("s"), last, last.removesuffix("s")):
        if word in CURRENCY_WORDS:
            return CURRENCY_WORDS[word]
    return None


STANDALONE_CURRENCY = re.compile(
    rf"(?<![A-Za-z])(?:{_SYMBOL})(?![\w$])|\b(?-i:{MAJOR_CODES})\b"
    rf"|\b(?:euros?|dollars?|yen|rupees?|yuan|renminbi|(?:pounds?\s+)?sterling)\b",
    re.IGNORECASE,
)


def currencies(text: str) -> list[Found]:
    """Currencies as ISO 4217 codes: each money amount's, and currencies named alone ("invoiced in euros",
    "currency: GBP"; only common codes, and "pounds" only as "pounds sterling")."""
    amounts = [(m.start(), m.end(), m.group(0), currency_code(m["pre"] or m["post"])) for m in MONEY.finditer(text)]
    in_amount = _covering([(start, end) for start, end, _, _ in amounts])
    alone = [
        (m.start(), m.end(), m.group(0), currency_code(m.group(0)))
        for m in STANDALONE_CURRENCY.finditer(text)
        if not in_amount(m.start())
    ]
    return [Found(code, span, start, code) for start, _, span, code in sorted(amounts + alone) if code]


def dates(text: str) -> list[Found]:
    """Calendar dates as ISO strings: 2024-03-05, 2024/03/05, 3/5/2024 (US order, unless the first number
    is over 12: 13/3/2024), 5.3.2024, 5 March 2024, March 5th, 2024."""
    found = []
    for pattern, order in DATE_PATTERNS:
        for match in pattern.finditer(text):
            month = _MONTHS[match["mon"].lower()] if "mon" in pattern.groupindex else int(match["m"])
            day_of_month = int(match["d"])
            if order == "mdy" and month > 12:
                month, day_of_month = day_of_month, month
            try:
                day = dt.date(int(match["y"]), month, day_of_month)
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
    in_date = _covering([(d.start, d.start + len(d.span)) for d in dates(text)])
    for match in PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 7 <= len(digits) <= 15 and not in_date(match.start()):
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


NEGATIONS = {"not", "no", "never", "without", "nor", "neither", "non", "cannot", "none", "nothing", "nobody"}
NEGATIVE_PREFIXES = ("non-", "non", "un", "dis", "in", "im", "il", "ir")  # longest first
NEGATION_WINDOW = 5  # words before the concept a negation may stand
# Words a negation's scope crosses on its way to the concept ("has not yet been fully paid"); any other
# word ends it ("did not know it was paid" states that it was paid).
NEGATION_SCOPE = {
    "be", "been", "being", "is", "are", "was", "were", "am", "have", "has", "had", "get", "got", "gotten",
    "do", "does", "did", "will", "would", "can", "could", "should", "shall", "may", "might", "must",
    "yet", "fully", "completely", "entirely", "already", "ever", "actually", "really", "properly", "totally",
    "quite", "always", "necessarily", "still", "even", "longer", "any", "at", "all", "the", "a", "an", "to",
}  # fmt: skip
_TOKEN = re.compile(r"[A-Za-z]+(?:[-'’][A-Za-z]+)*|[.,;:!?()=\n]")
_STEM_SUFFIXES = ("ability", "ibility", "able", "ible", "ing", "ed", "es", "s", "ly")


def stem(word: str) -> str:
    """A crude stem that joins inflections of one word: shipped/shipping/ship, refundable/refunded/refund."""
    word = word.lower()
    for suffix in _STEM_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word[:-1] if len(word) > 4 and word.endswith("e") else word


def _unprefixed(word: str) -> str | None:
    """`word` without a negative prefix (unpaid -> paid, non-refundable -> refundable), or None."""
    for prefix in NEGATIVE_PREFIXES:
        rest = word[len(prefix) :].lstrip("-")
        if word.lower().startswith(prefix) and len(rest) >= (3 if prefix in ("un", "non-", "non") else 4):
            return rest
    return None


def polarity(text: str, concept: str, companions: list[str] | tuple[str, ...] = ()) -> list[Found]:
    """Every statement of `concept` (a word such as "paid") in the text, with whether it holds (True) or is
    negated (False): by a negative prefix ("unpaid", "non-refundable"), by a negation among the
    NEGATION_WINDOW words before it with only NEGATION_SCOPE words between ("has not been paid", "was
    never shipped", "isn't paid"), or by a "no"/"false" answer after it ("Paid: no"); negations cancel in
    pairs. A concept that is itself negative ("unpaid") reads its positive form as negated. Questions are
    not statements, nor are sentences that lack one of `companions` ("payment" for "payment received")."""
    target = stem(concept)
    positive = _unprefixed(concept) if concept.lower().startswith(("un", "non")) else None
    tokens = list(_TOKEN.finditer(text))
    found = []
    for i, token in enumerate(tokens):
        word = token.group(0)
        if stem(word) == target:
            holds = True
        elif (rest := _unprefixed(word)) is not None and stem(rest) == target:
            holds = False
        elif positive is not None and stem(word) == stem(positive):
            holds = False
        else:
            continue
        sentence = _sentence(tokens, i)
        answer = _answer_after(tokens, i)
        if (answer is None and sentence[-1].group(0) == "?") or not _mentions(sentence, companions):
            continue
        if answer is False or _negated_before(tokens, i):
            holds = not holds
        found.append(Found(holds, word, token.start()))
    return found


def _negated_before(tokens: list[re.Match], index: int) -> bool:
    """Whether an odd number of negations stand before the concept, within its negation scope."""
    negations = 0
    for token in reversed(tokens[max(0, index - NEGATION_WINDOW) : index]):
        word = token.group(0).lower()
        negated = word in NEGATIONS or word.endswith(("n't", "n’t"))
        if not negated and word not in NEGATION_SCOPE:
            break
        negations += negated
    return negations % 2 == 1


def _answer_after(tokens: list[re.Match], index: int) -> bool | None:
    """True/False for "paid: yes" / "paid? no" / "paid = false"; None when no such answer follows."""
    following = [t.group(0).lower() for t in tokens[index + 1 : index + 3]]
    if len(following) == 2 and following[0] in (":", "?", "=") and following[1] in ("yes", "no", "true", "false"):
        return following[1] in ("yes", "true")
    return None


def _sentence(tokens: list[re.Match], index: int) -> list[re.Match]:
    """The tokens of the sentence around tokens[index], its closing punctuation included."""
    ends = (".", "!", "?", "\n")
    start = next((i + 1 for i in range(index - 1, -1, -1) if tokens[i].group(0) in ends), 0)
    end = next((i + 1 for i in range(index, len(tokens)) if tokens[i].group(0) in ends), len(tokens))
    return tokens[start:end]


def _mentions(sentence: list[re.Match], words: list[str] | tuple[str, ...]) -> bool:
    stems = {stem(token.group(0)) for token in sentence}
    return all(stem(word) in stems for word in words)
