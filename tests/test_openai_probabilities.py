"""How the openai engine turns top log-probabilities into label probabilities."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sutro_sql.engines.openai import label_probabilities, reply_confidence, temper

LABELS = ["billing", "bug", "account_access", "feature_request"]


def token(text: str, p: float, alternatives: dict[str, float] | None = None) -> dict:
    top = {text: p, **(alternatives or {})}
    return {
        "token": text,
        "logprob": math.log(p),
        "top_logprobs": [{"token": t, "logprob": math.log(q)} for t, q in top.items()],
    }


def test_a_label_starting_inside_a_token_is_found_and_its_prefix_shared():
    # the server merged the quote and the label's first letter: '": "b' then 'illing'
    tokens = [
        token('{"label', 1.0),
        token('": "b', 0.7, {'": "f': 0.2, '":': 0.05}),  # '":' starts no label: dropped
        token("illing", 0.9, {"ug": 0.1}),  # 'b' + 'ug' is bug
        token('"}', 1.0),
    ]
    content = "".join(t["token"] for t in tokens)
    got = label_probabilities(content, content.index("billing"), "billing", LABELS, tokens)
    total = 0.63 + 0.07 + 0.2 + 0.05  # billing, bug, feature_request, leftover 0.05 -> account_access
    assert got == pytest.approx(
        {"billing": 0.63 / total, "bug": 0.07 / total, "feature_request": 0.2 / total, "account_access": 0.05 / total}
    )


def test_tokens_that_do_not_spell_the_reply_give_no_probabilities():
    tokens = [token("Ġbilling", 0.9)]  # byte-level token text, not the reply's characters
    assert label_probabilities("billing", 0, "billing", LABELS, tokens) is None


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.text(alphabet="ab_", min_size=1, max_size=6), min_size=1, max_size=6, unique=True),
    data=st.data(),
)
def test_label_probabilities_cover_every_label_and_sum_to_one(labels, data):
    chosen = data.draw(st.sampled_from(labels))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(chosen) - 1)), max_size=3)))
    pieces = [chosen[i:j] for i, j in zip([0, *cuts], [*cuts, len(chosen)], strict=True) if chosen[i:j]]
    tokens = []
    for piece in pieces:
        p = data.draw(st.floats(0.05, 1.0))
        alternatives = data.draw(
            st.dictionaries(st.text(alphabet="ab_", min_size=1, max_size=4), st.floats(0.001, 1.0), max_size=4)
        )
        scale = (1 - p) / max(1.0, sum(alternatives.values())) if alternatives else 0.0
        tokens.append(token(piece, p, {t: q * scale for t, q in alternatives.items() if t != piece and q * scale > 0}))
    content = "".join(pieces) + '"}'
    tokens.append(token('"}', 1.0))
    got = label_probabilities(content, 0, chosen, labels, tokens)
    assert got is not None and set(got) == set(labels)
    assert all(p >= 0 for p in got.values())
    assert math.isclose(sum(got.values()), 1.0)
    assert math.isclose(sum(temper(got, 1.7).values()), 1.0)


def test_reply_confidence_is_the_geometric_mean_token_probability():
    assert reply_confidence([token("a", 0.5), token("b", 0.8)]) == pytest.approx(math.sqrt(0.4))
    assert reply_confidence(None) == 0.5
