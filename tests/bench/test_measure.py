"""bench.measure's model-call timer: concurrent calls (several streams) are not counted twice."""

from bench.measure import ModelTimer, union_seconds


def test_the_union_of_spans_counts_overlapping_time_once():
    assert union_seconds([]) == 0.0
    assert union_seconds([(0.0, 1.0), (2.0, 3.0)]) == 2.0
    assert union_seconds([(0.0, 2.0), (1.0, 3.0), (1.5, 1.7)]) == 3.0
    assert union_seconds([(1.0, 3.0), (0.0, 2.0)]) == 3.0


def test_model_time_of_a_pass_is_the_union_of_its_calls_spans_when_they_have_them():
    timer = ModelTimer()
    timer.new_pass()
    timer.add(2.0, 4, 16, 40, span=(10.0, 12.0))
    timer.add(2.0, 4, 16, 40, span=(11.0, 13.0))  # ran beside the first
    timer.new_pass()
    timer.add(1.5, 4, 16, 40)  # no span: the seconds add up
    timer.add(1.5, 4, 16, 40)
    assert timer.per_pass == [3.0, 3.0]
    assert timer.record(slice(0, None))["model_s_per_pass"] == [3.0, 3.0]
    assert timer.shapes == [(4, 16, 40), (4, 16, 40)]  # the first pass's calls
