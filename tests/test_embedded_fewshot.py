"""The few-shot classifier on synthetic embeddings: zero-shot fallback, learning from examples,
calibration, and evidence that names real examples of the chosen label."""

from __future__ import annotations

import numpy as np

from sutro_sql.engines.fewshot import ZERO_SHOT_PRIOR_COUNT, FewShotClassifier, softmax, zero_shot_scale

DIM = 32


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def e5_like(rows: np.ndarray) -> np.ndarray:
    """Unit vectors with e5's geometry: all share one direction, so cosines sit near 0.9 and differ by
    hundredths (the units the zero-shot scale and its prior are set in)."""
    shared = np.zeros(DIM)
    shared[0] = 1.0
    return unit(shared + 0.35 * unit(rows))


def clusters(rng, centres: np.ndarray, per_label: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(len(centres)), per_label)
    return unit(centres[labels] + noise * rng.standard_normal((len(labels), DIM))), labels


def ece(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    return sum(
        (index == b).mean() * abs(correct[index == b].mean() - confidence[index == b].mean())
        for b in range(bins)
        if (index == b).any()
    )


def test_without_examples_it_is_the_zero_shot_softmax():
    rng = np.random.default_rng(0)
    descriptions = unit(rng.standard_normal((3, DIM)))
    texts = unit(rng.standard_normal((5, DIM)))
    model = FewShotClassifier(descriptions)
    expected = softmax(zero_shot_scale(3) * texts @ descriptions.T)
    assert np.allclose(model.predict_proba(texts), expected)
    assert np.allclose(model.predict_proba(texts).sum(axis=1), 1.0)


def test_zero_shot_scale_grows_with_the_competing_labels():
    assert zero_shot_scale(5) == 4 * zero_shot_scale(2) and zero_shot_scale(1) == zero_shot_scale(2)


def test_the_zero_shot_prior_keeps_a_few_noisy_examples_from_drowning_good_descriptions(monkeypatch):
    """Eight overlapping examples per label, accurate descriptions: leave-one-out alone picks an
    example-heavy blend that loses to zero-shot; the zero-shot prior wins part of that back (the
    prior is kept light, 4 pseudo-observations, so that a couple of reviewed examples per label
    still steer a Function whose descriptions are vague)."""
    rng = np.random.default_rng(4)
    centres = unit(rng.standard_normal((2, DIM)))
    descriptions = e5_like(centres)
    test, gold = clusters(rng, centres, 1000, noise=1.0)
    test = e5_like(test)
    draws = [clusters(rng, centres, 8, noise=1.0) for _ in range(5)]

    def mean_accuracy() -> float:
        models = [FewShotClassifier(descriptions, e5_like(examples), labels) for examples, labels in draws]
        for model, (examples, _) in zip(models, draws, strict=True):
            floor = ZERO_SHOT_PRIOR_COUNT / (ZERO_SHOT_PRIOR_COUNT + len(examples))
            assert model.zero_shot_scale >= zero_shot_scale(2) * floor - 1e-9
        return float(np.mean([(m.predict_proba(test).argmax(axis=1) == gold).mean() for m in models]))

    zero_shot = (FewShotClassifier(descriptions).predict_proba(test).argmax(axis=1) == gold).mean()
    with_prior = mean_accuracy()
    monkeypatch.setattr("sutro_sql.engines.fewshot.ZERO_SHOT_PRIOR_COUNT", 0.0)
    monkeypatch.setattr(f"{__name__}.ZERO_SHOT_PRIOR_COUNT", 0.0)
    without_prior = mean_accuracy()
    assert without_prior < zero_shot - 0.03  # the failure the prior is for
    assert with_prior - without_prior > (zero_shot - without_prior) / 4  # recovers a share of the loss


def test_examples_override_uninformative_descriptions():
    rng = np.random.default_rng(1)
    centres = 3 * unit(rng.standard_normal((3, DIM)))
    descriptions = e5_like(rng.standard_normal((3, DIM)))  # unrelated to the true classes
    examples, labels = clusters(rng, centres, 16, noise=1.0)
    test, gold = clusters(rng, centres, 200, noise=1.0)
    examples, test = e5_like(examples), e5_like(test)
    zero_shot = (FewShotClassifier(descriptions).predict_proba(test).argmax(axis=1) == gold).mean()
    few_shot = (FewShotClassifier(descriptions, examples, labels).predict_proba(test).argmax(axis=1) == gold).mean()
    assert zero_shot < 0.6 and few_shot > 0.9


def test_confidence_is_calibrated_on_overlapping_classes():
    rng = np.random.default_rng(2)
    centres = unit(rng.standard_normal((2, DIM)))
    descriptions = unit(centres + 0.5 * rng.standard_normal((2, DIM)))
    examples, labels = clusters(rng, centres, 64, noise=0.45)
    test, gold = clusters(rng, centres, 1500, noise=0.45)
    probabilities = FewShotClassifier(descriptions, examples, labels).predict_proba(test)
    accuracy = (probabilities.argmax(axis=1) == gold).mean()
    assert 0.6 < accuracy < 0.98  # the classes overlap, so calibration is actually tested
    assert ece(probabilities, gold) < 0.08


def test_evidence_names_examples_of_the_chosen_label_only():
    rng = np.random.default_rng(3)
    centres = 3 * unit(rng.standard_normal((2, DIM)))
    examples, labels = clusters(rng, centres, 8, noise=0.5)
    model = FewShotClassifier(unit(centres), examples, labels)
    query = unit(centres[1:2] + 0.1 * rng.standard_normal((1, DIM)))[0]
    evidence = model.explain(query, 1)
    assert evidence and all(labels[c.index] == 1 for c in evidence if c.index >= 0)
    assert [c.logit for c in evidence] == sorted((c.logit for c in evidence), reverse=True)


def test_too_many_examples_are_cut_to_a_balanced_subset():
    from sutro_sql.engines.embedded import balanced_subset

    labels = [0] * 10 + [1] * 2 + [2] * 5
    chosen = balanced_subset(labels, 7)
    assert len(chosen) == 7 and chosen == sorted(chosen)
    assert sorted(labels[i] for i in chosen) == [0, 0, 0, 1, 1, 2, 2]
    assert balanced_subset(labels, 100) == list(range(len(labels)))
