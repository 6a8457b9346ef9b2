"""API inputs that used to be accepted wrongly or refused late: `lower_case` that is not a bool,
and a bad element far into the input."""

import numpy as np
import pytest

from bert_tf import BertEmbedder, get_bert_embeddings
from bert_tf.embed.api import get_embedder


@pytest.fixture
def uncased(make_checkpoint):
    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4")
    return directory


class Runs(list):
    """The rows of every model call of the embedders it watches (`BertEmbedder.on_call`)."""

    def watch(self, embedder):
        embedder.on_call = lambda call: self.append(call.rows)
        return embedder


@pytest.fixture
def runs():
    return Runs()


@pytest.mark.parametrize("value", ["false", "False", "no", "", 0, 1, "true", [True]])
def test_lower_case_must_be_a_bool_or_none(uncased, value):
    for call in (lambda: get_bert_embeddings(["a b"], checkpoint=uncased, lower_case=value),
                 lambda: get_embedder(uncased, lower_case=value),
                 lambda: BertEmbedder.from_checkpoint(uncased, lower_case=value),
                 # refused before anything is looked up or loaded
                 lambda: get_embedder(uncased / "no such checkpoint", lower_case=value)):
        with pytest.raises(TypeError) as error:
            call()
        assert str(error.value) == f"lower_case must be True, False or None (None: from the checkpoint); got {value!r}"


def test_casings_that_mean_the_same_share_one_cached_model(uncased):
    first = get_embedder(uncased)
    assert first.lower_case is True
    assert get_embedder(uncased, lower_case=True) is first
    assert get_embedder(uncased, lower_case=np.True_) is first
    assert get_embedder(str(uncased), lower_case=None) is first
    cased = get_embedder(uncased, lower_case=False)
    assert cased is not first and cased.lower_case is False
    assert get_embedder(uncased, lower_case=np.False_) is cased


def test_get_bert_embeddings_refuses_a_bad_element_before_running_the_model(uncased, runs):
    runs.watch(get_embedder(uncased))  # the model get_bert_embeddings uses
    sentences = ["a b"] * 5000 + [7]
    with pytest.raises(TypeError, match=r"^sentences\[5000\] is int, expected str$"):
        get_bert_embeddings(sentences, checkpoint=uncased)
    assert runs == []
    get_bert_embeddings(sentences[:3], checkpoint=uncased)
    assert runs == [3]  # the watch sees the calls it should


@pytest.mark.parametrize("as_input", [list, tuple, iter], ids=["list", "tuple", "generator"])
def test_embed_words_refuses_a_bad_element_before_embedding_any_text(uncased, runs, as_input):
    embedder = runs.watch(BertEmbedder.from_checkpoint(uncased))
    sentences = ["a b"] * 5000 + [b"c"]
    with pytest.raises(TypeError, match=r"^sentences\[5000\] is bytes, expected str \(decode bytes first\)$"):
        embedder.embed_words(as_input(sentences))
    with pytest.raises(TypeError, match=r"sentences\[5000\]"):
        embedder.sentence_vectors(as_input(sentences))
    with pytest.raises(TypeError, match=r"sentences\[5000\]"):
        embedder.token_states(as_input(sentences))
    assert runs == []


def test_iterating_over_a_list_checks_it_whole_first(uncased, runs):
    embedder = runs.watch(BertEmbedder.from_checkpoint(uncased))
    stream = embedder.iter_embed(["a b"] * 10 + [None], chunk_size=4)
    with pytest.raises(TypeError, match=r"^sentences\[10\] is NoneType, expected str$"):
        next(stream)
    assert runs == []


def test_a_stream_fails_at_the_bad_element_before_embedding_its_chunk(uncased, runs):
    embedder = runs.watch(BertEmbedder.from_checkpoint(uncased))
    sentences = ["a b"] * 6 + [3.5] + ["c"] * 5
    stream = embedder.iter_words(iter(sentences), chunk_size=4)
    got = [next(stream) for _ in range(4)]  # the first chunk streams out
    assert [w.text for w in got[0]] == ["a", "b"]
    with pytest.raises(TypeError, match=r"^sentences\[6\] is float, expected str$"):
        next(stream)
    assert runs == [4]  # one call for the first chunk; the chunk holding index 6 (texts 4..7) never ran


def test_each_text_is_checked_once_however_many_layers_pass_it_on(uncased, monkeypatch):
    from bert_tf.text import inputs

    checks = []
    original = inputs.check_text
    monkeypatch.setattr(inputs, "check_text", lambda index, item: checks.append(index) or original(index, item))
    texts = ["a b", "the bank", "c"]
    get_bert_embeddings(texts, checkpoint=uncased)
    assert checks == [0, 1, 2]
    checks.clear()
    embedder = get_embedder(uncased)
    embedder.sentence_vectors(texts)
    embedder.token_states(texts)
    assert checks == [0, 1, 2] * 2
