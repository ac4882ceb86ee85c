"""ROC-AUC and rank correlation against their definitions (pairs counted, Pearson of ranks)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from vlmrm_cli.ranking import average_ranks, roc_auc, spearman

scores_and_labels = st.integers(2, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(-3, 3), min_size=n, max_size=n),  # small integers: many ties
        st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda labels: 0 < sum(labels) < len(labels)),
    )
)


@given(scores_and_labels)
def test_roc_auc_is_the_share_of_pairs_ranked_right(data) -> None:
    scores, labels = np.array(data[0], float), np.array(data[1])
    pairs = list(itertools.product(scores[labels], scores[~labels]))
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(scores, labels) == pytest.approx(expected)


@given(scores_and_labels)
def test_spearman_is_pearson_of_mean_ranks(data) -> None:
    scores, labels = np.array(data[0], float), np.array(data[1], float)
    ranks = [
        [sorted(values).index(v) + (sorted(values).count(v) + 1) / 2 for v in values]
        for values in (scores, labels)
    ]
    if np.std(ranks[0]) == 0:
        assert spearman(scores, labels) == 0.0
    else:
        assert spearman(scores, labels) == pytest.approx(np.corrcoef(ranks[0], ranks[1])[0, 1])


def test_ranks_of_ties_share_their_mean() -> None:
    np.testing.assert_array_equal(average_ranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1.0, 3.5, 2.0])


def test_perfect_and_reversed_separation() -> None:
    labels = np.array([True, True, False, False])
    assert roc_auc(np.array([4.0, 3, 2, 1]), labels) == 1.0
    assert roc_auc(np.array([1.0, 2, 3, 4]), labels) == 0.0
    assert spearman(np.array([4.0, 3, 2, 1]), labels) == pytest.approx(np.sqrt(0.8))


def test_auc_needs_both_labels() -> None:
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc(np.array([1.0, 2.0]), np.array([True, True]))
