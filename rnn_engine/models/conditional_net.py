"""Decoders whose initial state comes from a class label (one-to-many) or from an encoder (seq2seq).

- `LabelDecoderNet`: h0 = label_embedding[label] reshaped to (L, B, H) (c0 = 0 for an LSTM); then a token
  decoder (embedding -> rnn -> head) predicts the next token at every step, trained with teacher forcing.
- `Seq2SeqNet`: an encoder (embedding -> rnn) reads the padded source; its final state (h_n, c_n), taken at
  each sequence's last valid step, is the decoder's initial state; the decoder is trained with teacher forcing
  and its gradient of the initial state flows back into the encoder.
"""

from __future__ import annotations

from ..backend import xp
from ..nn.modules import Dropout, Embedding, Linear
from .base import Network, State, make_rnn, rnn_backward, rnn_forward


class _Decoder(Network):
    """embedding -> dropout -> rnn -> dropout -> head, under the given module-name prefix."""

    def _build_decoder(self, vocab_size: int, cfg: dict, rng, prefix: str) -> None:
        E, H, L = cfg["embedding_dim"], cfg["hidden_size"], cfg["num_layers"]
        dtype, p = cfg["dtype"], cfg["dropout"]
        self.dec_embedding = Embedding(vocab_size, E, dtype=dtype, seed=rng)
        self.decoder = make_rnn(
            cfg["cell"], E, H, L, dropout=p, bidirectional=False, dtype=dtype, rng=rng, init=cfg["init"],
            forget_bias=cfg.get("forget_bias"),
        )
        self.head = Linear(H, vocab_size, dtype=dtype, seed=rng)
        self.drop_in = Dropout(p, dtype=dtype, seed=rng)
        self.drop_out = Dropout(p, dtype=dtype, seed=rng)
        self.modules.update(
            {
                f"{prefix}embedding": self.dec_embedding,
                prefix.rstrip("_") or "rnn": self.decoder,
                "head": self.head,
                "drop_in": self.drop_in,
                "drop_out": self.drop_out,
            }
        )

    def decode(self, ids, state: State):
        """ids (B, T) from the initial state -> (logits (B, T, V), state)."""
        x = self.drop_in(self.dec_embedding(ids))
        out, new_state = rnn_forward(self.decoder, x, state)
        return self.head(self.drop_out(out)), new_state

    def decode_backward(self, d_logits):
        """Returns the gradient of the decoder's initial state (dh0, dc0)."""
        d_out = self.drop_out.backward(self.head.backward(d_logits))
        dx, d_state = rnn_backward(self.decoder, d_out)
        self.dec_embedding.backward(self.drop_in.backward(dx))
        return d_state


class LabelDecoderNet(_Decoder):
    def __init__(self, vocab_size: int, num_labels: int, cfg: dict, rng: xp.random.Generator) -> None:
        super().__init__()
        L, H = cfg["num_layers"], cfg["hidden_size"]
        self.label_embedding = Embedding(num_labels, L * H, dtype=cfg["dtype"], seed=rng)
        self.label_embedding.params["weight"] *= 0.1  # a small start: N(0, 0.01) initial states
        self.modules["label_embedding"] = self.label_embedding
        self._build_decoder(vocab_size, cfg, rng, "")

    def initial_state(self, labels) -> State:
        """labels (B,) -> h0 (L, B, H) and c0 zeros for an LSTM."""
        L, H = self.decoder.num_layers, self.decoder.hidden_size
        v = self.label_embedding(xp.asarray(labels))  # (B, L*H)
        h0 = xp.ascontiguousarray(v.reshape(-1, L, H).transpose(1, 0, 2))
        return h0, (xp.zeros_like(h0) if self.decoder.mode == "LSTM" else None)

    def forward(self, labels, ids):
        logits, _ = self.decode(ids, self.initial_state(labels))
        return logits

    def backward(self, d_logits) -> None:
        dh0, _ = self.decode_backward(d_logits)
        B = dh0.shape[1]
        self.label_embedding.backward(dh0.transpose(1, 0, 2).reshape(B, -1))


class Seq2SeqNet(_Decoder):
    def __init__(self, vocab_size: int, cfg: dict, rng: xp.random.Generator) -> None:
        super().__init__()
        E, H, L = cfg["embedding_dim"], cfg["hidden_size"], cfg["num_layers"]
        self.enc_embedding = Embedding(vocab_size, E, dtype=cfg["dtype"], seed=rng)
        self.encoder = make_rnn(
            cfg["cell"],
            E,
            H,
            L,
            dropout=cfg["dropout"],
            bidirectional=False,
            dtype=cfg["dtype"],
            rng=rng,
            init=cfg["init"],
            forget_bias=cfg.get("forget_bias"),
        )
        self.modules.update({"encoder_embedding": self.enc_embedding, "encoder": self.encoder})
        self._build_decoder(vocab_size, cfg, rng, "decoder_")
        self._enc_shape = None

    def encode(self, src, lengths=None) -> State:
        """src (B, S) padded, lengths (B,) -> the encoder state at each sequence's last valid step."""
        out, state = rnn_forward(self.encoder, self.enc_embedding(src), None, lengths)
        self._enc_shape = out.shape
        return state

    def forward(self, src, src_lengths, dec_in):
        logits, _ = self.decode(dec_in, self.encode(src, src_lengths))
        return logits

    def backward(self, d_logits) -> None:
        d_state = self.decode_backward(d_logits)
        dx, _ = rnn_backward(self.encoder, xp.zeros(self._enc_shape, dtype=d_logits.dtype), d_state)
        self.enc_embedding.backward(dx)
