"""The research notebook's experiments and a polysemy check, on the real all-MiniLM-L6-v2 weights."""

import numpy as np
import pytest

from bert_tf.cli.demo import SEED_EXPERIMENTS
from bert_tf import get_bert_embeddings


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name, sentences, targets", SEED_EXPERIMENTS, ids=[e[0] for e in SEED_EXPERIMENTS])
def test_notebook_experiment_context_moves_the_word_the_right_way(minilm_checkpoint, name, sentences, targets):
    """word@1 is used in the sense of target B (sentence 3), word@2 in the sense of target C (sentence 4).

    The notebook expected absolute orderings (mouse@2: keyboard > rat). What must hold for any
    contextual model is the shift: each sense moves the word towards its own neighbour.
    """
    emb = get_bert_embeddings(sentences, checkpoint=minilm_checkpoint)
    word, b, c = targets
    w1, w2, vb, vc = emb[0][word], emb[1][word], emb[2][b], emb[3][c]
    assert cos(w1, vb) > cos(w2, vb), "the first sense should be closer to " + b
    assert cos(w2, vc) > cos(w1, vc), "the second sense should be closer to " + c
    assert cos(w1, w2) < 0.99  # the same word, two contexts: two vectors
    # The notebook's headline: in the first context, the same-sense neighbour wins outright.
    if name == "mouse":
        assert cos(w1, vb) > cos(w1, vc)


POLYSEMY = {  # word: (sense A, sense A, sense B)
    "bank": ("He deposited the cheque at the bank.", "The bank approved my loan.",
             "We had a picnic on the river bank."),
    "bat": ("He swung the bat and hit the ball.", "A cricket bat is made of willow.",
            "A bat flew out of the cave at dusk."),
    "bark": ("The dog's bark woke the neighbours.", "I heard a loud bark from the yard.",
             "The bark of the oak tree is rough."),
    "spring": ("Flowers bloom in spring.", "We visit every spring when it is warm.",
               "The mattress has a broken spring."),
    "plant": ("Water the plant on the windowsill.", "This plant needs a lot of sunlight.",
              "The power plant closed last year."),
    "match": ("He lit a match to start the fire.", "Strike the match against the box.",
              "We won the football match."),
    "bass": ("He plays bass in a jazz band.", "The bass guitar was too loud.",
             "He caught a large bass in the lake."),
    "crane": ("A crane lifted the steel beams.", "The construction crane towered over the site.",
              "A crane waded through the marsh looking for fish."),
    "seal": ("A seal was sunbathing on the rocks.", "The seal caught a fish in the icy water.",
             "Break the seal before opening the jar."),
    "pitch": ("The singer had perfect pitch.", "Her voice rose in pitch.",
              "The players ran onto the pitch."),
    "mole": ("A mole dug tunnels under the lawn.", "The mole is a small burrowing mammal.",
             "The spy was a mole in the agency."),
    "key": ("I lost the key to my front door.", "Turn the key to unlock the car.",
            "Hard work is the key to success."),
}


def test_same_sense_is_closer_than_other_sense_for_most_ambiguous_words(minilm_checkpoint):
    sentences = [s for triple in POLYSEMY.values() for s in triple]
    emb = get_bert_embeddings(sentences, checkpoint=minilm_checkpoint)
    wins = []
    for k, word in enumerate(POLYSEMY):
        a1, a2, b = (emb[3 * k + i][word] for i in range(3))
        wins.append(cos(a1, a2) > max(cos(a1, b), cos(a2, b)))
    rate = sum(wins) / len(wins)
    print(f"polysemy: same sense closer for {sum(wins)}/{len(wins)} words")
    assert rate >= 0.75, dict(zip(POLYSEMY, wins))
