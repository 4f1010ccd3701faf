"""Agreement and repeatability statistics of the eval suite, on hand-computed examples."""

from __future__ import annotations

import pytest

from closedloop.evals.metrics import agreement, repeatability


def test_kappa_matches_a_hand_computed_example():
    # 10 items: observed agreement 0.7; chance 0.5*0.6 + 0.5*0.4 = 0.5; kappa (0.7-0.5)/0.5 = 0.4.
    truth = ["a"] * 5 + ["b"] * 5
    pred = ["a", "a", "a", "a", "b", "a", "a", "b", "b", "b"]
    a = agreement(truth, pred)
    assert a.accuracy == pytest.approx(0.7)
    assert a.kappa == pytest.approx(0.4)
    assert a.confusion == {"a": {"a": 4, "b": 1}, "b": {"a": 2, "b": 3}}


def test_kappa_is_zero_for_always_the_majority_and_none_when_undefined():
    assert agreement(["a", "a", "b"], ["a", "a", "a"]).kappa == pytest.approx(0.0)
    assert agreement(["a", "a"], ["a", "a"]).kappa is None
    assert agreement(["a", "b"], ["b", "a"]).kappa == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="truth has 2 labels, predicted 1"):
        agreement(["a", "b"], ["a"])


def test_pass_k_and_flip_rate():
    r = repeatability(
        {"x": [True, True, True], "y": [True, False, True], "z": [False, False, False]}
    )
    assert r.k == 3 and r.cases == 3
    assert r.pass_1 == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert r.pass_k == pytest.approx(1 / 3)
    assert r.flip_rate == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no cases"):
        repeatability({})
