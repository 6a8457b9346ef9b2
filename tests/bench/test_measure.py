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


def test_the_split_int8_engine_starts_as_the_cli_starts_an_int8_process():
    """`bert_tf_int8_split` is what `bert-tf embed --precision int8` runs: the pools split for the streams the
    library chooses, one intra-op thread each on the bench's two threads."""
    from bench.context import THREADS
    from bench.registry import INT8_SPLIT, load
    from bert_tf import streams

    engine = load()[INT8_SPLIT]
    env = dict(engine.env)
    chosen = streams.process_streams_for(None, "int8", {}, THREADS)
    assert env["BERT_TF_STREAMS"] == str(chosen)
    assert env["TF_NUM_INTRAOP_THREADS"] == str(streams.threads_per_stream(chosen, THREADS))
    assert engine.precision == "int8" and engine.reference == "bert_tf_words" and not engine.is_peer


def test_time_given_for_several_calls_at_once_adds_to_the_pass():
    """OpenVINO's async pass times its calls together (`add_seconds`) and records each call's shape with 0
    seconds: the shapes do not take the time away."""
    timer = ModelTimer()
    timer.new_pass()
    timer.add_seconds(4.0)
    timer.add(0.0, 4, 16, 40)
    timer.add(0.0, 4, 16, 40)
    assert timer.per_pass == [4.0]
