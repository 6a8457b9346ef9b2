"""The tagger of tagger_frozen.py, then the same with the top two encoder layers fine-tuned.

    python examples/tagger_fine_tuned.py [--checkpoint DIR] [--epochs 5] [--quick]

Prints both runs' loss per epoch (fine-tuning should take it further down) and how much
longer a fine-tuned training step takes than a frozen one.
"""

import argparse
import sys

from bert_tf.keras import examples


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="BERT checkpoint directory (default: as bert-tf resolves it)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=200, help="generated training sentences")
    parser.add_argument("--layers", type=int, default=2, help="top encoder layers to fine-tune")
    parser.add_argument("--quick", action="store_true", help="a short run (tests): 3 epochs of 32 sentences")
    args = parser.parse_args(argv)
    epochs, sentences = (3, 32) if args.quick else (args.epochs, args.sentences)
    runs = {}
    for name, layers in (("frozen", 0), (f"top {args.layers} fine-tuned", args.layers)):
        runs[name] = examples.train_tagger(args.checkpoint, fine_tune_layers=layers, epochs=epochs,
                                           sentences=sentences)
        result = runs[name]
        print(f"{name:>18}: loss {examples.format_losses(result['losses'])}; held-out tag accuracy "
              f"{result['accuracy']:.3f}; {1000 * result['step_seconds']:.1f} ms a step")
    frozen, tuned = runs.values()
    print(f"final loss: {tuned['losses'][-1]:.3f} fine-tuned vs {frozen['losses'][-1]:.3f} frozen; "
          f"a fine-tuned step takes {tuned['step_seconds'] / frozen['step_seconds']:.2f}x a frozen one")


if __name__ == "__main__":
    sys.exit(examples.run(main))
