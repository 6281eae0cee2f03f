"""Targets: the one-sided Clopper-Pearson bound and the threshold it picks, on synthetic scores."""

from __future__ import annotations

import math

import pytest

from sutro_sql.cascade import accuracy_lower_bound, answer_matches, choose_threshold, rows_needed
from sutro_sql.errors import ValidationError


@pytest.mark.parametrize(("correct", "rows"), [(1, 1), (3, 10), (50, 59), (59, 59), (95, 100), (900, 1000)])
def test_bound_is_the_beta_quantile(correct, rows):
    stats = pytest.importorskip("scipy.stats")
    assert accuracy_lower_bound(correct, rows) == pytest.approx(stats.beta.ppf(0.05, correct, rows - correct + 1))


def test_no_right_answers_bound_nothing():
    assert accuracy_lower_bound(0, 40) == 0.0


@pytest.mark.parametrize("target", [0.8, 0.85, 0.9, 0.95, 0.99])
def test_rows_needed_is_the_fewest_all_right_rows_that_reach_the_target(target):
    needed = rows_needed(target)
    assert accuracy_lower_bound(needed, needed) >= target
    assert accuracy_lower_bound(needed - 1, needed - 1) < target


def test_the_lowest_threshold_whose_kept_rows_meet_the_target():
    # 100 right answers at confidences 0.80..0.99, then 50 wrong ones all at 0.79: only 0.80 works
    confidences = [0.80 + i / 500 for i in range(100)] + [0.79] * 50
    correct = [True] * 100 + [False] * 50
    threshold, kept, right, bound = choose_threshold(confidences, correct, 0.95)
    assert (threshold, kept, right) == (0.80, 100, 100)
    assert bound == pytest.approx(accuracy_lower_bound(100, 100))


def test_a_threshold_lower_still_is_chosen_when_its_kept_rows_still_meet_the_target():
    # one wrong answer among 300 at the bottom keeps the bound above 0.95
    confidences = [1 - i / 1000 for i in range(300)]
    correct = [True] * 299 + [False]
    threshold, kept, right, _ = choose_threshold(confidences, correct, 0.95)
    assert (threshold, kept, right) == (confidences[-1], 300, 299)


def test_the_lowest_passing_threshold_is_chosen_even_below_one_that_fails():
    # a wrong block at 0.85 fails the target there; with the many right rows below it,
    # keeping every row passes again, and the lowest threshold that passes is the one chosen
    confidences = [0.9 + i / 1000 for i in range(100)] + [0.85] * 10 + [0.5 + i / 10000 for i in range(1000)]
    correct = [True] * 100 + [False] * 10 + [True] * 1000
    assert accuracy_lower_bound(110 - 10, 110) < 0.95 <= accuracy_lower_bound(1100, 1110)
    threshold, kept, right, _ = choose_threshold(confidences, correct, 0.95)
    assert (threshold, kept, right) == (0.5, 1110, 1100)


def test_rows_of_one_confidence_are_kept_or_escalated_together():
    confidences = [0.9] * 60 + [0.7] * 60
    correct = [True] * 60 + [True] * 59 + [False]
    threshold, kept, _, _ = choose_threshold(confidences, correct, 0.9)
    assert (threshold, kept) == (0.7, 120)


def test_rows_without_confidence_are_never_kept():
    confidences = [None] * 10 + [0.9] * 60
    threshold, kept, right, _ = choose_threshold(confidences, [True] * 70, 0.95)
    assert (threshold, kept, right) == (0.9, 60, 60)


def test_when_no_threshold_meets_the_target_every_row_escalates():
    confidences = [0.6 + i / 1000 for i in range(100)]
    threshold, kept, _, _ = choose_threshold(confidences, [i % 2 == 0 for i in range(100)], 0.9)
    assert math.isinf(threshold) and kept == 0


def test_too_few_calibration_rows_say_how_many_are_needed():
    with pytest.raises(ValidationError, match=r"at least 59 calibration rows .* got 30"):
        choose_threshold([0.99] * 30, [True] * 30, 0.95)


def test_a_reviewed_label_matches_a_classification_by_label_and_an_extraction_by_value():
    assert answer_matches({"response": "bug", "output": '"bug"'}, "bug")
    assert not answer_matches({"response": "bug", "output": '"bug"'}, "billing")
    extracted = {"response": None, "output": '{"amount": 12.5, "currency": "EUR"}'}
    assert answer_matches(extracted, {"currency": "EUR", "amount": 12.5})
    assert answer_matches(extracted, '{"currency": "EUR", "amount": 12.5}')  # a label column holding JSON text
    assert not answer_matches(extracted, {"currency": "USD", "amount": 12.5})
