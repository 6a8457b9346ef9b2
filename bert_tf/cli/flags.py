"""The command-line flags of the embedding options: one flag per `EmbeddingOptions` field, same names."""

from __future__ import annotations

from bert_tf.embed.options import COMBINE_CHOICES, SENTENCE_STRATEGIES, SUBWORD_POOLING_CHOICES, EmbeddingOptions
from bert_tf.model.precision import PRECISIONS

# ---------------------------------------------------------------------- command-line flags


def parse_layers(text: str) -> tuple[int, ...]:
    """`--layers=-4,-3,-2,-1` -> (-4, -3, -2, -1); an argparse type."""
    import argparse

    try:
        layers = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        layers = ()
    if not layers:
        raise argparse.ArgumentTypeError(f"--layers takes comma-separated integers like -4,-3,-2,-1; got {text!r}")
    return layers


def parse_streams(text: str) -> int | str:
    """`--streams 2` -> 2, `--streams auto` -> "auto"; an argparse type."""
    import argparse

    from bert_tf.errors import InvalidValue
    from bert_tf.streams import check_streams

    try:
        value = check_streams(text, "--streams")
    except InvalidValue as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def add_embedding_arguments(parser, *, batching: bool = True) -> None:
    """The flags shared by `bert-tf embed`, `similarity`, `plot` and `export`, with the API's names and defaults."""
    parser.add_argument("--checkpoint", help="checkpoint directory (default: BERT_TF_CHECKPOINT, then "
                                             "checkpoints/uncased_L-12_H-768_A-12, then the offline model)")
    # None, not DEFAULT_LAYERS: the library then picks the default, which for a model of
    # fewer than four layers is all of them, while an explicit -4 it cannot serve is an error.
    parser.add_argument("--layers", type=parse_layers, default=None, metavar="I,J,...",
                        help="hidden layers combined into word vectors; write it with '=' because the value "
                             "starts with a minus: --layers=-4,-3,-2,-1 (the default; all the layers of a "
                             "model with fewer than four)")
    parser.add_argument("--combine", choices=COMBINE_CHOICES, default="sum", help="how to combine the layers")
    parser.add_argument("--subword-pooling", choices=SUBWORD_POOLING_CHOICES, default="mean",
                        help="how to pool a word's pieces")
    parser.add_argument("--dim", type=int, default=None, help="keep the first DIM components of word vectors")
    parser.add_argument("--sentence-strategy", choices=SENTENCE_STRATEGIES, default="mean",
                        help="sentence vector: mean/max over the tokens of --sentence-layer, its [CLS], "
                             "or the pooler output")
    parser.add_argument("--sentence-layer", type=int, default=-2,
                        help="hidden layer for the sentence vector (default -2)")
    if batching:
        parser.add_argument("--batch-size", type=int, default=None,
                            help="the most texts per model call (default: each call is filled up to a "
                                 "budget of padded positions, which runs fastest)")
        parser.add_argument("--streams", type=parse_streams, default=None, metavar="N",
                            help="model calls run at once, each with cores/N of TensorFlow's threads (default "
                                 "auto: BERT_TF_STREAMS, else 2 sharing every core, or with --precision int8 2 of "
                                 "one core each, which ran fastest where measured); the vectors are the same "
                                 "whatever N")
    parser.add_argument("--max-seq-length", type=int, default=None,
                        help="longest model input in word pieces (default: the checkpoint's limit, 512); "
                             "longer texts are embedded in overlapping windows")
    add_precision_argument(parser)
    casing = parser.add_mutually_exclusive_group()
    casing.add_argument("--lower-case", dest="lower_case", action="store_true", default=None,
                        help="force lower-casing (default: from the checkpoint)")
    casing.add_argument("--cased", dest="lower_case", action="store_false", help="force cased tokenization")


def add_precision_argument(parser) -> None:
    """`--precision`, as `BertEmbedder.from_checkpoint` takes it."""
    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="what the model computes in: float32 (default, exact), bfloat16 (about twice as "
                             "fast on CPUs with AVX512_BF16 or AMX; vectors within bfloat16 rounding), float16 "
                             "(GPUs), int8 (dynamic int8 quantization of the dense layers: the fastest on a CPU, "
                             "word vectors at about 0.9996 mean cosine to float32 on a trained model), int8-litert "
                             "(int8 run by LiteRT's XNNPACK kernels: the fastest on short texts such as queries, "
                             "0.9994-0.9995 mean word cosine to float32; converted once per checkpoint and "
                             "cached), or auto (bfloat16 where the hardware computes it natively, else float32); "
                             "the vectors are float32 whatever the precision")


def embedder_from_args(args):
    """The cached embedder the flags name (`--checkpoint`, casing, `--precision`)."""
    from bert_tf.embed.api import get_embedder

    return get_embedder(args.checkpoint, lower_case=getattr(args, "lower_case", None),
                        precision=getattr(args, "precision", "float32"))


def options_from_args(args) -> EmbeddingOptions:
    """The `EmbeddingOptions` the flags of `add_embedding_arguments` name (checked)."""
    return EmbeddingOptions(layers=args.layers, combine=args.combine, subword_pooling=args.subword_pooling,
                            dim=args.dim, sentence_strategy=args.sentence_strategy,
                            sentence_layer=args.sentence_layer, max_seq_length=args.max_seq_length,
                            batch_size=getattr(args, "batch_size", None))
