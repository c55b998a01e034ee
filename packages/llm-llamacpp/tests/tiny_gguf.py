"""Tiny llama-architecture GGUF models written with ``gguf``'s GGUFWriter, for tests.

``write_chain(path, chain)``: a model whose next token depends only on the current one and
follows ``chain`` in a loop, so its output is known in advance, at any temperature. Every layer's
attention and feed-forward weights are zero, so the residual stream carries the token's embedding
(a one-hot vector) unchanged; the output matrix maps each one-hot to a large logit on the token
that follows it in ``chain`` (any other token leads back to the chain's start). The vocabulary
holds the 256 byte tokens, so a chain of ``<0xE2> <0x82> <0xAC>`` spells "€" one byte per token:
the split UTF-8 a streaming decoder must not break.

``write_random(path)``: random weights, the garbage (and broken UTF-8) a real model can emit.
Both take well under a second and a few hundred KB to a couple of MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gguf
import numpy as np

SPECIAL = ["<unk>", "<s>", "</s>"]
BYTES = [f"<0x{i:02X}>" for i in range(256)]
WORDS = ["▁the", "▁cat", "▁sat", "▁on", "▁mat", ".", "▁dog"]
TOKENS = SPECIAL + BYTES + WORDS
INDEX = {t: i for i, t in enumerate(TOKENS)}
#: What the default chain says, one loop of it: "€ the caté." (8 tokens: € and é are 3 and 2).
EURO_CHAIN = ["<0xE2>", "<0x82>", "<0xAC>", "▁the", "▁cat", "<0xC3>", "<0xA9>", "."]
EURO_TEXT = "€ the caté."
EURO_TOKENS = len(EURO_CHAIN)
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _header(w: gguf.GGUFWriter, *, n_ctx: int, n_embd: int, n_ff: int, n_layer: int,
            n_head: int, chat_template: str | None, name: str) -> None:
    w.add_name(name)
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_block_count(n_layer)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    types = ([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
             + [gguf.TokenType.BYTE] * len(BYTES) + [gguf.TokenType.NORMAL] * len(WORDS))
    w.add_tokenizer_model("llama")
    w.add_token_list(TOKENS)
    w.add_token_scores([0.0] * len(TOKENS))
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    if chat_template:
        w.add_chat_template(chat_template)


def _layers(w: gguf.GGUFWriter, n_layer: int, n_embd: int, n_ff: int,
            rng: np.random.Generator | None = None) -> None:
    """Zero weights (the residual carries the embedding through), or random ones."""
    def m(*shape: int) -> np.ndarray:
        if rng is None:
            return np.zeros(shape, np.float32)
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, np.float32))
        for part in ("q", "k", "v", "output"):
            w.add_tensor(f"blk.{i}.attn_{part}.weight", m(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", m(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", m(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", m(n_embd, n_ff))


def _finish(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_chain(path: Path, chain: Sequence[str] = EURO_CHAIN, *, n_ctx: int = 4096,
                arch: str = "llama", chat_template: str | None = CHATML,
                drop: Sequence[str] = ()) -> Path:
    """A model that says ``chain`` over and over (see the module's description); ``drop``
    leaves those tensors out (a header that is fine, weights that are not)."""
    n_vocab, n_embd, n_head, n_ff, n_layer = len(TOKENS), 272, 4, 32, 1
    assert n_embd >= n_vocab  # one-hot embeddings
    w = gguf.GGUFWriter(str(path), arch)
    if drop:
        add = w.add_tensor
        w.add_tensor = lambda name, *a, **k: None if name in drop else add(name, *a, **k)
    _header(w, n_ctx=n_ctx, n_embd=n_embd, n_ff=n_ff, n_layer=n_layer, n_head=n_head,
            chat_template=chat_template, name="tiny-chain")
    embeddings = np.eye(n_vocab, n_embd, dtype=np.float32)
    output = np.zeros((n_vocab, n_embd), np.float32)
    follows = {INDEX[a]: INDEX[b] for a, b in zip(chain, [*chain[1:], chain[0]], strict=True)}
    for i in range(n_vocab):
        output[follows.get(i, INDEX[chain[0]]), i] = 1.0
    w.add_tensor("token_embd.weight", embeddings)
    _layers(w, n_layer, n_embd, n_ff)
    # rmsnorm makes the one-hot sqrt(n_embd) tall; x10 more: a logit gap of ~165, so even
    # temperature 1 picks the chain's next token.
    w.add_tensor("output_norm.weight", np.full(n_embd, 10.0, np.float32))
    w.add_tensor("output.weight", output)
    _finish(w)
    return path


def write_random(path: Path, *, seed: int = 0, n_ctx: int = 512, arch: str = "llama") -> Path:
    """Random weights: garbage tokens, byte tokens among them."""
    rng = np.random.default_rng(seed)
    n_vocab, n_embd, n_head, n_ff, n_layer = len(TOKENS), 64, 4, 128, 2
    w = gguf.GGUFWriter(str(path), arch)
    _header(w, n_ctx=n_ctx, n_embd=n_embd, n_ff=n_ff, n_layer=n_layer, n_head=n_head,
            chat_template=None, name="tiny-random")
    w.add_tensor("token_embd.weight", (rng.standard_normal((n_vocab, n_embd)) * 0.5
                                       ).astype(np.float32))
    _layers(w, n_layer, n_embd, n_ff, rng=rng)
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    w.add_tensor("output.weight", (rng.standard_normal((n_vocab, n_embd)) * 0.5
                                   ).astype(np.float32))
    _finish(w)
    return path
