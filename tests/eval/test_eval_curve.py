"""The refusal trade-off curve, by hand."""

from __future__ import annotations

import json

from eval.curve import RefusalCurve, refusal_curve


def test_curve_by_hand() -> None:
    scored = [(0.2, True), (0.5, True), (0.8, True), (0.9, True), (0.1, False), (0.2, False), (0.6, False)]
    curve = refusal_curve(scored, configured=0.55, score="answerability", without_score=2)
    got = [(p.threshold, p.unanswerable_refused, p.answerable_refused) for p in curve.points]
    third, two_thirds = round(1 / 3, 6), round(2 / 3, 6)
    assert got[:-1] == [(0.1, 0.0, 0.0), (0.2, third, 0.0), (0.5, two_thirds, 0.25), (0.6, two_thirds, 0.5),
                        (0.8, 1.0, 0.5), (0.9, 1.0, 0.75)]
    assert got[-1] == (0.900001, 1.0, 1.0)  # just above every score: everything refused
    assert curve.configured is not None
    assert (curve.configured.unanswerable_refused, curve.configured.answerable_refused) == (two_thirds, 0.5)
    assert (curve.answerable, curve.unanswerable, curve.without_score) == (4, 3, 2)
    assert RefusalCurve.from_dict(json.loads(json.dumps(curve.to_dict()))) == curve


def test_curve_edges() -> None:
    assert refusal_curve([]).points == () and refusal_curve([]).configured is None
    only = refusal_curve([(0.4, True)], configured=None)
    assert [(p.unanswerable_refused, p.answerable_refused) for p in only.points] == [(None, 0.0), (None, 1.0)]
