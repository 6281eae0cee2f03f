"""Cascades with accuracy targets: the embedded engine first, a stand-in large model second.

Per labeled data set (bench/datasets.py), the first stage is the embedded engine with 8
reviewed examples per label; the stronger stage is `openai:bench-model` on a loopback
OpenAI-compatible server that answers the gold label, except for a configurable share of
rows (`--strong-error`, 5% by default) where it answers another one, and reports the tokens
of each call. Both are Functions of one embedded deployment, called from SQL through the
production path:

    sutro_run(fn, {...}, escalate_to := fn || '-strong', target_accuracy := t,
              calibrate_on := 'SELECT ..., label FROM calibration')

For each target (0.85 / 0.90 / 0.95) it prints the threshold the target picked on the
calibration rows (one-sided 95% Clopper-Pearson bound on the kept rows' accuracy), the share
of held-out test rows escalated, the accuracy reached on them, and the cost: the strong
stage's tokens for the escalated rows over its tokens for every row (the embedded stage runs
on local CPU and is counted as free), and the plan's `check_strong` bound on the whole
cascade's accuracy over the calibration rows (below the target: the stronger stage itself
falls short, the stated assumption does not hold). Calibration rows are rows the examples were not drawn
from; test rows are disjoint from both.

    python bench/cascade.py                     # 300 calibration + 300 test rows per packaged set
    python bench/cascade.py --rows 200 --sets bbc_news product_reviews
    python bench/cascade.py --embedding-cache /tmp/cascade.npz   # reruns skip encoding

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import duckdb  # noqa: E402
from datasets import LabeledSet, bbc_news, product_reviews, rotten_tomatoes, support_tickets  # noqa: E402
from quality import DiskCachedEncoder, classification_spec, split  # noqa: E402

import sutro_sql  # noqa: E402
from sutro_sql.backends.local import LocalBackend  # noqa: E402
from sutro_sql.client import Client  # noqa: E402
from sutro_sql.config import OpenAISettings  # noqa: E402
from sutro_sql.engines.embedded import EmbeddedEngine  # noqa: E402
from sutro_sql.engines.encoder import E5Encoder  # noqa: E402
from sutro_sql.engines.openai import OpenAIEngine  # noqa: E402
from sutro_sql.engines.openai.prompt import render_input  # noqa: E402
from sutro_sql.functions import FunctionSpec  # noqa: E402
from tests.support.fake_openai import FakeOpenAIServer  # noqa: E402

SETS = {"bbc_news": bbc_news, "support_tickets": support_tickets, "product_reviews": product_reviews}
OPTIONAL_SETS = {"rotten_tomatoes": rotten_tomatoes}
TARGETS = (0.85, 0.90, 0.95)
SHOTS = 8
#: The goal on topic data: escalate at most this share of rows.
TOPIC_MAX_ESCALATED = 0.60


class GoldServer(FakeOpenAIServer):
    """The stand-in large model: the gold label of the row it is asked about with probability
    `top`, except for `error_rate` of the rows (chosen by a hash of the text), where another label."""

    def __init__(self, error_rate: float, top: float = 0.95) -> None:
        super().__init__()
        self.error_rate, self.top = error_rate, top
        self.gold: dict[str, str] = {}  # user turn -> gold label
        self._scripting = threading.Lock()  # `label_probs` is the parent's one knob: one reply at a time

    def _classify(self, text: str, labels: list[str], **options: Any) -> tuple[str, list[dict[str, Any]]]:
        gold = self.gold.get(text)
        probs = None
        if gold is not None:
            wrong = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8 < self.error_rate
            chosen = labels[(labels.index(gold) + 1) % len(labels)] if wrong else gold
            rest = (1 - self.top) / max(1, len(labels) - 1)
            probs = {label: self.top if label == chosen else rest for label in labels}
        with self._scripting:
            self.label_probs = probs
            try:
                return super()._classify(text, labels, **options)
            finally:
                self.label_probs = None


class StageEngines:
    """Plugs both stages into one deployment through the engine interface: embedded Functions
    to the embedded engine (with an on-disk embedding cache), `openai:` ones to the server."""

    name = "bench-stages"

    def __init__(self, embedded: EmbeddedEngine, strong: OpenAIEngine) -> None:
        self.embedded, self.strong = embedded, strong

    def answer(self, spec: FunctionSpec, rows: list[dict[str, str]]) -> list[Any]:
        return (self.embedded if spec.engine == "embedded" else self.strong).answer(spec, rows)


def parts(data: LabeledSet, rows: int) -> tuple[list[int], list[int], list[int]]:
    """(example rows, calibration rows, test rows): examples from the pool, and the held-out rows
    (`2 * rows` of a packaged set, the test part of the team's own sets) shuffled and cut in two, so
    calibration and test rows come from one distribution, as the bound assumes. (Calibrating the
    team's sets on their pool, whose scenarios the examples share, overstated the accuracy on the
    test part's other scenarios: support_tickets missed 0.95 that way.)"""
    held_out, draws = split(data, 2 * rows, seeds=1)
    examples = sorted(i for label in data.labels for i in draws[1][label][:SHOTS])
    shuffled = [held_out[i] for i in np.random.default_rng(7).permutation(len(held_out))]
    half = min(rows, len(shuffled) // 2)
    return examples, shuffled[:half], shuffled[half : 2 * half]


def table(data: LabeledSet, indices: list[int], label: str) -> pa.Table:
    columns: dict[str, list[Any]] = {"id": indices}
    for name in data.inputs:
        columns[name] = [data.row(i)[name] for i in indices]
    columns[label] = [data.gold[i] for i in indices]
    return pa.table(columns)


def bench_set(con: duckdb.DuckDBPyConnection, client: Client, server: GoldServer, data: LabeledSet, rows: int) -> dict:
    examples, calibration, test = parts(data, rows)
    first = classification_spec(data, examples).model_copy(update={"name": data.name})
    strong = first.model_copy(update={"name": f"{data.name}-strong", "engine": "openai:bench-model"})
    client.publish_function(first)
    client.publish_function(strong)
    for i in range(len(data.texts)):
        server.gold[render_input(strong, data.row(i))] = data.gold[i]
    calibration_table, test_table = table(data, calibration, "label"), table(data, test, "gold")  # noqa: F841
    con.execute(f"CREATE OR REPLACE TABLE calibration_{data.name} AS SELECT * EXCLUDE (id) FROM calibration_table")
    con.execute(f"CREATE OR REPLACE TABLE test_{data.name} AS SELECT * FROM test_table")
    struct = "{" + ", ".join(f"'{name}': {name}" for name in data.inputs) + "}"
    inputs = ", ".join(data.inputs)

    def answers(options: str, fn: str = data.name) -> list[tuple]:
        return con.sql(
            f"SELECT a.response, a.escalated, a.usage.input_tokens + a.usage.output_tokens, gold FROM "
            f"(SELECT gold, sutro_run('{fn}', {struct}{options}) AS a FROM test_{data.name})"
        ).fetchall()

    started = time.perf_counter()
    first_only = answers("")
    strong_only = answers("", fn=strong.name)
    strong_tokens = sum(row[2] for row in strong_only)
    result = {
        "set": data.name,
        "kind": data.kind,
        "calibration_rows": len(calibration),
        "test_rows": len(test),
        "first_accuracy": round(sum(r[0] == r[3] for r in first_only) / len(test), 3),
        "strong_accuracy": round(sum(r[0] == r[3] for r in strong_only) / len(test), 3),
        "targets": [],
    }
    for target in TARGETS:
        calibrate_on = f"SELECT {inputs}, label FROM calibration_{data.name}"
        try:
            plan = con.sql(
                f"SELECT escalate_below, escalated_share, cascade_accuracy_bound FROM sutro_cascade_plan("
                f"'{data.name}', '{strong.name}', {target}, calibrate_on := '{calibrate_on}', check_strong := true)"
            ).fetchall()[0]
        except duckdb.Error as exc:  # too few calibration rows: the error says how many
            result["targets"].append({"target": target, "error": str(exc).split("Error: ")[-1][:160]})
            continue
        threshold = plan[0]  # NULL when no threshold meets the target: every row escalates
        cascade = answers(
            f", escalate_to := '{strong.name}', target_accuracy := {target}, calibrate_on := '{calibrate_on}'"
        )
        escalated = [r for r in cascade if r[1]]
        result["targets"].append(
            {
                "target": target,
                "threshold": None if threshold is None else round(threshold, 4),
                "planned_escalated": round(plan[1], 3),
                "checked_bound": round(plan[2], 3),
                "escalated": round(len(escalated) / len(test), 3),
                "accuracy": round(sum(r[0] == r[3] for r in cascade) / len(test), 3),
                "cost_vs_strong": round(sum(r[2] for r in escalated) / strong_tokens, 3),
            }
        )
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def print_table(results: list[dict], strong_error: float) -> None:
    print(
        f"strong stage: gold label with a {strong_error:.0%} error rate; first stage: embedded, {SHOTS} examples/label"
    )
    header = (
        f"{'set':<16} {'cal/test':>9} {'first':>6} {'strong':>6} {'target':>6} {'threshold':>9} "
        f"{'escalated':>9} {'accuracy':>8} {'cost':>6} {'checked':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        for t in r["targets"]:
            head = (
                f"{r['set']:<16} {r['calibration_rows']:>4}/{r['test_rows']:<4} "
                f"{r['first_accuracy']:>6.3f} {r['strong_accuracy']:>6.3f} {t['target']:>6.2f}"
            )
            if "error" in t:
                print(f"{head} {t['error']}")
                continue
            threshold = "all" if t["threshold"] is None else f"{t['threshold']:.3f}"
            met = "" if t["accuracy"] >= t["target"] else "  (target missed)"
            print(
                f"{head} {threshold:>9} {t['escalated']:>9.1%} {t['accuracy']:>8.3f} {t['cost_vs_strong']:>6.1%} "
                f"{t['checked_bound']:>7.3f}{met}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300, help="calibration rows and test rows per packaged set")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=[*SETS, *OPTIONAL_SETS])
    parser.add_argument("--strong-error", type=float, default=0.05, help="share of rows the strong stage gets wrong")
    parser.add_argument("--embedding-cache", type=Path, default=None, help="an .npz file reused across runs")
    args = parser.parse_args()
    encoder = DiskCachedEncoder(E5Encoder(), args.embedding_cache)
    results = []
    with (
        GoldServer(args.strong_error) as server,
        tempfile.TemporaryDirectory(prefix="sutro-cascade-bench-") as home,
        OpenAIEngine("bench-model", OpenAISettings(base_url=server.base_url, max_concurrency=8)) as strong,
    ):
        backend = LocalBackend(home, engine=StageEngines(EmbeddedEngine(encoder), strong))
        with Client(backend=backend, progress=False) as client:
            con = sutro_sql.connect(client=client)
            for name in args.sets:
                results.append(bench_set(con, client, server, {**SETS, **OPTIONAL_SETS}[name](), args.rows))
                encoder.save()
            con.close()
        backend.close()
    print_table(results, args.strong_error)
    goals = {
        "targets_met": all(t.get("accuracy", 0) >= t["target"] for r in results for t in r["targets"]),
        "topic_escalated_at_most_60pct": all(
            t.get("escalated", 1) <= TOPIC_MAX_ESCALATED for r in results if r["kind"] == "topic" for t in r["targets"]
        ),
    }
    print(
        json.dumps(
            {
                "bench": "cascade",
                "rows": args.rows,
                "strong_error": args.strong_error,
                "results": results,
                "goals": goals,
            }
        )
    )


if __name__ == "__main__":
    main()
