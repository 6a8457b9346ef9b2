"""A BiLSTM word tagger on frozen contextual word vectors (`GivenWordVectors`), trained a few epochs.

    python examples/tagger_frozen.py [--checkpoint DIR] [--epochs 5] [--quick]

The labelled set is generated (`bert_tf.keras.examples.tagging_data`): short sentences whose
words are tagged DET, ADJ, NOUN, VERB, PRON, ADP or PUNCT, some words a noun or a verb by context.
"""

import argparse
import sys

from bert_tf.keras import examples


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="BERT checkpoint directory (default: as bert-tf resolves it)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=200, help="generated training sentences")
    parser.add_argument("--quick", action="store_true", help="a short run (tests): 3 epochs of 32 sentences")
    args = parser.parse_args(argv)
    epochs, sentences = (3, 32) if args.quick else (args.epochs, args.sentences)
    result = examples.train_tagger(args.checkpoint, epochs=epochs, sentences=sentences)
    print(f"frozen word vectors, {sentences} sentences, {epochs} epochs")
    print(f"loss per epoch: {examples.format_losses(result['losses'])}")
    print(f"held-out tag accuracy: {result['accuracy']:.3f}")


if __name__ == "__main__":
    sys.exit(examples.run(main))
