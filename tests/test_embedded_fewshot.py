"""The few-shot classifier on synthetic embeddings: zero-shot fallback, learning from examples,
calibration, and evidence that names real examples of the chosen label."""

from __future__ import annotations

import numpy as np

from sutro_sql.engines.fewshot import (
    FewShotClassifier,
    held_out_prototype_cosines,
    ridge_fit,
    softmax,
    zero_shot_scale,
)

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


def test_leave_one_out_predictions_equal_a_refit_without_the_point():
    """The shortcut must match refitting (weighted centring included) with each point left out:
    a shortcut that ignored the intercept let every point vote for itself and made a few
    examples look far more reliable than they are."""
    rng = np.random.default_rng(5)
    points, labels = clusters(rng, unit(rng.standard_normal((3, DIM))), 6, noise=1.0)
    targets = np.eye(3)[labels] - 1.0 / 3
    weights = rng.uniform(0.5, 2.0, len(points))

    def fit(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        centre = weights[keep] @ points[keep] / weights[keep].sum()
        centred = points[keep] - centre
        dual, loo = ridge_fit(centred @ centred.T, targets[keep], 0.1, weights[keep])
        return centre, dual, loo

    _, _, loo = fit(np.arange(len(points)))
    for i in range(len(points)):
        rest = np.delete(np.arange(len(points)), i)
        centre, dual, _ = fit(rest)
        mean_target = weights[rest] @ targets[rest] / weights[rest].sum()
        refit = mean_target + (points[i] - centre) @ (points[rest] - centre).T @ dual
        assert np.allclose(loo[i], refit)


def test_a_label_with_more_examples_gets_no_head_start():
    """Reviewed examples are rarely balanced; four times as many of one label must not make the
    model answer that label for texts that are plainly the other one."""
    rng = np.random.default_rng(6)
    centres = 3 * unit(rng.standard_normal((2, DIM)))
    descriptions = e5_like(centres)
    majority, minority = clusters(rng, centres[:1], 16, noise=1.5), clusters(rng, centres[1:], 4, noise=1.5)
    examples = e5_like(np.vstack([majority[0], minority[0]]))
    labels = np.array([0] * 16 + [1] * 4)
    test, gold = clusters(rng, centres, 500, noise=1.5)
    predicted = FewShotClassifier(descriptions, examples, labels).predict_proba(e5_like(test)).argmax(axis=1)
    assert 0.4 < (predicted == 0).mean() < 0.6
    assert (predicted == gold).mean() > 0.8


def test_offsets_are_fitted_only_when_every_label_has_examples_in_unequal_numbers():
    """A label without examples has no held-out evidence (fitting would only push the others up),
    and equal counts give no head start to correct."""
    rng = np.random.default_rng(7)
    descriptions = e5_like(rng.standard_normal((3, DIM)))
    examples = e5_like(rng.standard_normal((12, DIM)))

    def offsets(labels: list[int]) -> np.ndarray:
        return FewShotClassifier(descriptions, examples[: len(labels)], np.array(labels)).label_offsets

    assert np.allclose(offsets([0] * 5), 0.0) and np.allclose(offsets([0, 0, 1, 1, 0]), 0.0)
    assert np.allclose(offsets([0, 1, 2] * 4), 0.0)
    assert not np.allclose(offsets([0] * 8 + [1, 2]), 0.0)


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


def test_two_examples_per_label_outweigh_descriptions_that_barely_differ():
    """The ticket router of issue 14: descriptions e5 finds nearly equidistant, 2 examples per label.
    Before the prototypes the ridge weight collapsed here: 0.55 accuracy, and 1 in 5 examples asked
    back got a wrong label."""
    accuracy = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        centres = 3 * unit(rng.standard_normal((4, DIM)))
        descriptions = e5_like(centres + 4 * rng.standard_normal((4, DIM)))  # little signal
        examples, labels = clusters(rng, centres, 2, noise=1.0)
        test, gold = clusters(rng, centres, 200, noise=1.0)
        model = FewShotClassifier(descriptions, e5_like(examples), labels)
        assert (model.predict_proba(e5_like(examples)).argmax(axis=1) == labels).all()
        accuracy.append((model.predict_proba(e5_like(test)).argmax(axis=1) == gold).mean())
    assert np.mean(accuracy) > 0.62


def test_held_out_prototype_cosines_equal_a_prototype_built_without_the_example():
    rng = np.random.default_rng(6)
    descriptions = unit(rng.standard_normal((2, DIM)))
    examples = unit(rng.standard_normal((5, DIM)))
    labels = np.array([0, 0, 0, 1, 1])
    sums = np.eye(2)[labels].T @ examples
    counts = np.bincount(labels)[labels]
    cosines = held_out_prototype_cosines(descriptions, examples, labels, sums, counts, alpha=2.0)
    others = [i for i in range(5) if labels[i] == 0 and i != 1]
    own = 2.0 * descriptions[0] + examples[others].sum(axis=0) * 3 / 2
    assert np.isclose(cosines[1, 0], examples[1] @ own / np.linalg.norm(own))
    other = 2.0 * descriptions[1] + sums[1]
    assert np.isclose(cosines[1, 1], examples[1] @ other / np.linalg.norm(other))


def test_two_noisy_examples_per_label_do_not_pull_accurate_descriptions_far_off():
    """Movie reviews at 2 per label: good descriptions, examples that say little. The prior on the
    description's weight leans on the descriptions when examples are few (with a fixed centre of 3
    examples the gap to zero-shot here was 0.058)."""
    zero_shot, few_shot = [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        centres = 3 * unit(rng.standard_normal((2, DIM)))
        examples, labels = clusters(rng, centres, 2, noise=3.0)
        test, gold = clusters(rng, centres, 300, noise=3.0)
        test = e5_like(test)
        zero_shot.append((FewShotClassifier(e5_like(centres)).predict_proba(test).argmax(axis=1) == gold).mean())
        model = FewShotClassifier(e5_like(centres), e5_like(examples), labels)
        few_shot.append((model.predict_proba(test).argmax(axis=1) == gold).mean())
    assert np.mean(few_shot) > np.mean(zero_shot) - 0.05
