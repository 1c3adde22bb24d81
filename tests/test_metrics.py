import numpy as np
import pytest

from mia_engine.metrics import attack_metrics


def test_hand_computed_roc_summary():
    # members 0.9 0.8 0.4 ; non-members 0.7 0.3 0.2 0.1
    m = attack_metrics([0.9, 0.8, 0.4], [0.7, 0.3, 0.2, 0.1], threshold=0.5, fpr_levels=(0.01, 0.25, 0.5))
    # pairs (member > non-member): 0.9 beats 4, 0.8 beats 4, 0.4 beats 3 -> 11 of 12
    assert m.auc == pytest.approx(11 / 12)
    # FPR 0 allows TPR 2/3 (threshold 0.8); FPR 1/4 allows TPR 1 (threshold 0.4 lets 0.7 in)
    assert m.tpr_at_fpr[0.01] == pytest.approx(2 / 3)
    assert m.tpr_at_fpr[0.25] == pytest.approx(1.0)
    assert m.tpr_at_fpr[0.5] == pytest.approx(1.0)
    # advantage: max(TPR - FPR) = 1 - 1/4 at threshold 0.4, vs 2/3 - 0 at 0.8
    assert m.advantage == pytest.approx(0.75)
    # at 0.5: members 0.9, 0.8 right, 0.4 wrong; non-members 0.7 wrong, the rest right -> 5/7
    assert m.accuracy == pytest.approx(5 / 7)
    assert (m.n_members, m.n_nonmembers) == (3, 4)


def test_ties_and_chance():
    m = attack_metrics(np.full(10, 0.5), np.full(10, 0.5), threshold=0.5)
    assert m.auc == pytest.approx(0.5)
    assert m.advantage == pytest.approx(0.0)
    assert m.tpr_at_fpr[0.01] == pytest.approx(0.0)
    assert m.accuracy == pytest.approx(0.5)  # everyone called a member


def test_perfect_separation():
    m = attack_metrics([0.9, 0.95], [0.1, 0.2, 0.3], threshold=0.5, fpr_levels=(0.01,))
    assert m.auc == 1.0 and m.advantage == 1.0 and m.accuracy == 1.0
    assert m.tpr_at_fpr[0.01] == 1.0
