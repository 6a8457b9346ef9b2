"""The BERT encoder as a Keras 3 model (TensorFlow backend), for inference and fine-tuning.

Layer and variable names are stable and mirror Google's TF1 scopes, so the
checkpoint table (`checkpoint.py`) can name every variable explicitly:

    embeddings/{word_embeddings, token_type_embeddings, position_embeddings}
    embeddings/layer_norm/{gamma, beta}
    layer_N/{query, key, value, attention_output}/{kernel, bias}
    layer_N/attention_layer_norm/{gamma, beta}
    layer_N/{intermediate, output}/{kernel, bias}
    layer_N/output_layer_norm/{gamma, beta}
    pooler/{kernel, bias}

Kernels keep TF1's `[in, out]` layout, so restoring needs no transposes.

Dropout is for fine-tuning only: `token_states(..., dropout_layers=N)` drops where
Google's `modeling.py` does (the attention probabilities at `attention_probs_dropout_prob`;
the attention and feed-forward outputs before each residual add at `hidden_dropout_prob`)
in the top N blocks, which must hold float32 variables. Without it (the default) the
graph has no dropout op at all: inference is unchanged.

`compute_dtype="bfloat16"` (or "float16") builds the mixed-precision encoder of
`precision.py`: the six dense layers of each block hold their kernels and biases
in that dtype (the checkpoint's float32 values rounded once, at construction), the
matmuls, attention and GELU compute in it (the softmax's statistics in float32
inside oneDNN's kernel), and the residual stream, LayerNorm, embeddings and pooler
stay float32, so every output is float32.

`compute_dtype="int8"` makes those six dense layers `quantize.QuantizedDense`:
int8 kernels, each token's input quantized to uint8 over its own range, float32
in and out; everything else computes in float32. The four that read a LayerNorm's
output (query, key and value read the previous block's, or the embeddings', and
intermediate its own block's attention LayerNorm) smooth their inputs by that
LayerNorm's gamma and beta (`quantize.py`). Such a block runs as its six int8 matmuls
and six XLA-compiled kernels for everything between them (`int8_block.py`), on token
rows padded to one of a few counts (`packing.py`).

`trained_layers=N` keeps the top N blocks trainable whatever the compute dtype: their
variables are float32 (gradients and optimiser updates need them). In a bfloat16 or
float16 encoder those blocks compute as Keras's "mixed_bfloat16"/"mixed_float16"
policy does (float32 variables cast to the compute dtype where a matmul reads them,
the same arithmetic as the blocks below); in an int8 encoder they compute in
float32, since int8 kernels cannot be trained. The blocks below are unchanged.

`BertEncoder(config, initial_values=...)` creates every variable straight from
a value looked up by the path above (`checkpoint.load_encoder` passes the
checkpoint's tensors), so a restored model never holds a second, throw-away
copy of its weights: for BERT-Base that saves about 250 MB of resident memory
over building with initializers and assigning afterwards.

The layers it is built of are in `layers.py` (activations, dense, LayerNorm, embeddings) and
`block.py` (the transformer block, in each precision above).
"""

from __future__ import annotations

from typing import Optional

from bert_tf.errors import InvalidValue
from bert_tf.model.block import TransformerBlock
from bert_tf.model.config import BertConfig
from bert_tf.model.layers import BertEmbeddings, InitialValues, dense_layer
from bert_tf.model.packing import Packing
from bert_tf.runtime import keras, tf

#: Added to attention logits at padding positions, as in Google's modeling.py
#: (`adder = (1.0 - mask) * -10000.0`), rather than -inf: identical softmax
#: for real tokens, and no NaN for an all-padding row.
ATTENTION_MASK_ADDER = -10000.0

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


def attention_adder_for(mask):
    """`[batch, 1, 1, seq]` float32: 0 where the key is a real token, `ATTENTION_MASK_ADDER` at padding.

    Built with a reshape that spells out the 1s, so TensorFlow's graph optimiser knows the
    shape statically and fuses `scores * scale + adder` into the attention batch matmul
    (one oneDNN kernel); from `mask[:, None, None, :]` it cannot tell, and the scale and the
    mask then run as two more passes over the scores.
    """
    mask = tf.cast(mask, tf.float32)
    shape = tf.shape(mask)
    return tf.reshape((1.0 - mask) * ATTENTION_MASK_ADDER, [shape[0], 1, 1, shape[1]])


#: The compute dtypes `BertEncoder` accepts (`precision.resolve_precision` maps the option onto them).
COMPUTE_DTYPES = ("float32", "bfloat16", "float16", "int8")

#: What a trained block (float32 variables) computes in, for each encoder compute dtype: a Keras
#: mixed policy where the encoder computes in a 16-bit float, float32 where int8 kernels cannot train.
TRAINED_BLOCK_DTYPES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16",
                        "int8": "float32"}


class BertEncoder(keras.Model):
    """BERT: embeddings, `num_hidden_layers` transformer blocks and the tanh pooler.

    Call it with a dict of int32 `[batch, seq]` tensors `input_word_ids`,
    `input_mask` (1 real, 0 padding) and `input_type_ids`. It returns a dict:

    * `sequence_output`: `[batch, seq, hidden]`, the last layer;
    * `pooled_output`: `[batch, hidden]`, tanh(dense([CLS] of the last layer));
    * `encoder_outputs`: a list of `num_hidden_layers` `[batch, seq, hidden]`
      tensors, one per transformer layer;
    * `embedding_output`: `[batch, seq, hidden]`, the input to the first layer.

    `hidden_states(outputs)` stacks the last two as `[layers + 1, ...]`, the
    "all hidden states" of Hugging Face's `output_hidden_states=True`.

    Example:
        >>> config, encoder = load_encoder("checkpoints/uncased_L-12_H-768_A-12")
        >>> out = encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})
    """

    def __init__(self, config: BertConfig, initial_values: Optional[InitialValues] = None, *,
                 compute_dtype: str = "float32", trained_layers: int = 0, **kwargs):
        """Builds every variable at once.

        Args:
            config: the model shape.
            initial_values: maps each variable's path (module docstring) to its value,
                e.g. the checkpoint's tensors; by default Keras's usual initializers.
            compute_dtype: "float32" (default), "bfloat16"/"float16" for mixed precision, or
                "int8" for int8 dense layers
                (module docstring); the outputs are float32 either way.
            trained_layers: the top this many blocks hold float32 variables, to be fine-tuned
                (module docstring); nothing changes in a float32 encoder.

        Raises:
            ValueError: an unknown `compute_dtype`, or `trained_layers` outside 0..num_hidden_layers.
        """
        if compute_dtype not in COMPUTE_DTYPES:
            raise InvalidValue(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}; got {compute_dtype!r}")
        layers = config.num_hidden_layers
        if isinstance(trained_layers, bool) or not isinstance(trained_layers, int) \
                or not 0 <= trained_layers <= layers:
            raise InvalidValue(f"trained_layers must be an integer from 0 to {layers}; got {trained_layers!r}")
        kwargs.setdefault("name", "bert")
        super().__init__(**kwargs)
        self.config = config
        self.precision = compute_dtype  # the compute dtype's name: "float32", "bfloat16", "float16" or "int8"
        self.trained_layers = trained_layers
        self.embeddings = BertEmbeddings(config, initial_values, name="embeddings")
        self.blocks = [TransformerBlock(config, initial_values, name=f"layer_{i}",
                                        compute_dtype=(compute_dtype if i < layers - trained_layers
                                                       else TRAINED_BLOCK_DTYPES[compute_dtype]),
                                        input_norm=f"layer_{i - 1}/output_layer_norm" if i else "embeddings/layer_norm")
                       for i in range(layers)]
        self.pooler = dense_layer(config.hidden_size, "pooler", initial_values, activation="tanh")
        self.embeddings.build()
        for block in self.blocks:
            block.build()
        self.pooler.build((None, config.hidden_size))
        self.built = True

    @property
    def keeps_kernels(self) -> bool:
        """Whether `token_states(..., fixed_weights=True)` keeps oneDNN's reordered kernels in some block
        (`TransformerBlock.keeps_kernels`): a graph of it is then laid out by its first call (`embed.graphs`)."""
        return any(block.keeps_kernels for block in self.blocks)

    def call(self, inputs, position_ids=None, attention_adder=None):
        word_ids = tf.cast(inputs["input_word_ids"], tf.int32)
        mask = tf.cast(inputs["input_mask"], tf.float32)
        type_ids = tf.cast(inputs["input_type_ids"], tf.int32)
        x = self.embeddings(word_ids, type_ids, position_ids)
        embedding_output = x
        if attention_adder is None:
            # [batch, 1, 1, seq]: every query position sees every real key position.
            attention_adder = attention_adder_for(mask)
        encoder_outputs = []
        for block in self.blocks:
            x = block(x, attention_adder)
            encoder_outputs.append(x)
        pooled = self.pooler(x[:, 0, :])
        return {
            "sequence_output": x,
            "pooled_output": pooled,
            "encoder_outputs": encoder_outputs,
            "embedding_output": embedding_output,
        }

    def token_states(self, word_ids, mask, *, dropout_layers: int = 0, fixed_weights: bool = False):
        """Every hidden state of the real tokens only, computed without padding in the dense layers.

        The same numbers as `call` (up to float rounding) at a cost proportional to the
        real tokens: only attention scores see the padded layout.

        Args:
            word_ids, mask: int32 `[batch, seq]`; token type ids are taken as 0.
            dropout_layers: the top this many blocks drop out as BERT trains (module docstring):
                the fine-tuned ones, while training. 0 (default): no dropout op in the graph.
            fixed_weights: for a traced inference graph whose weights will not change again (the
                embedder's): the float32 and bfloat16 dense layers then keep oneDNN's reordered kernels
                between calls (`onednn.fixed_weight_dense`), which a few rows (a query) run about
                twice as fast; a graph over weights that train or are reloaded must not ask for it.

        Returns:
            `(states, pooled)`: `states` is a list of `num_hidden_layers + 1` tensors
            `[tokens, hidden]` (embedding output first; tokens in the row-major order of
            `tf.boolean_mask(x, mask)`), `pooled` is `[batch, hidden]` (zeros for a row
            whose first position is padding: it has no [CLS]).

        Raises:
            ValueError: `dropout_layers` reaching a block without float32 variables (see `trained_layers`).
        """
        if isinstance(dropout_layers, bool) or not isinstance(dropout_layers, int) \
                or not 0 <= dropout_layers <= len(self.blocks):
            raise InvalidValue(f"dropout_layers must be an integer from 0 to {len(self.blocks)}; "
                               f"got {dropout_layers!r}")
        first_dropped = len(self.blocks) - dropout_layers
        packing = Packing(mask, pad_rows=any(block.fused_int8 for block in self.blocks))
        ids = tf.gather(tf.reshape(tf.cast(word_ids, tf.int32), [-1]), packing.token_slots)
        positions = packing.token_slots % packing.seq
        x = self.embeddings(ids[tf.newaxis], tf.zeros_like(ids)[tf.newaxis], positions[tf.newaxis])[0]
        adder = attention_adder_for(mask)
        states = [x]
        x = packing.pad(x)  # [rows, hidden]
        for i, block in enumerate(self.blocks):
            x = block(x, adder, packing=packing, dropout=i >= first_dropped, fixed_weights=fixed_weights)
            states.append(packing.unpad(x))
        # [CLS] is each row's first position; a row with no real token there pools to zeros.
        first = tf.gather(packing.slot_tokens, tf.range(packing.batch) * packing.seq)  # [batch]
        pooled = self.pooler(packing.gather_tokens(x, first))
        return states, tf.where((first < packing.num_tokens)[:, tf.newaxis], pooled, tf.zeros_like(pooled))


def hidden_states(outputs) -> tf.Tensor:
    """`[num_hidden_layers + 1, batch, seq, hidden]`: the embedding output, then every layer."""
    return tf.stack([outputs["embedding_output"], *outputs["encoder_outputs"]], axis=0)

