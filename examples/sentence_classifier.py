"""A topic classifier (money, river, football) over frozen sentence vectors (`SentenceVectors`).

    python examples/sentence_classifier.py [--checkpoint DIR] [--epochs 10] [--quick]
"""

import argparse
import sys

from bert_tf.keras import examples


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="BERT checkpoint directory (default: as bert-tf resolves it)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--sentences", type=int, default=120, help="generated training sentences")
    parser.add_argument("--strategy", default="mean", help="sentence vector: mean, max, cls or pooled")
    parser.add_argument("--quick", action="store_true", help="a short run (tests): 3 epochs of 24 sentences")
    args = parser.parse_args(argv)
    epochs, sentences = (3, 24) if args.quick else (args.epochs, args.sentences)
    result = examples.train_classifier(args.checkpoint, epochs=epochs, sentences=sentences,
                                       sentence_strategy=args.strategy)
    print(f"frozen sentence vectors ({args.strategy}), {sentences} sentences, {epochs} epochs")
    print(f"loss per epoch: {examples.format_losses(result['losses'])}")
    print(f"held-out accuracy: {result['accuracy']:.3f}")


if __name__ == "__main__":
    sys.exit(examples.run(main))
