"""A trained (or trainable) model of one kind: network, tokenizer, labels, normalisation, metadata, inference.

`Model.predict(inputs, top_k=1)` returns one dict of plain Python values per input (k = top_k):

- language_model, input text: {"tokens": [id per input token], "top_tokens": [{"ids": [k], "texts": [k],
  "probs": [k]} per input token]}: the distribution of the token after each input token (read after <bos>);
- classification, input text: {"labels": [k labels, most likely first], "probs": [k], "length": tokens read};
- tagging, input text or a list of token strings: {"tokens": [text per step], "tags": [tag per step],
  "probs": [probability of that tag per step]}, and with top_k > 1 "top_tags" / "top_probs" ([k] per step);
- forecasting, input a list of values or of rows [value, exog...]: {"values": [next value], "length": rows
  given} (reads the last `window` rows);
- one_to_many, input a label: {"text": greedy output, "tokens": [ids], "length": 0};
- seq2seq, input a source text: {"text": greedy output, "tokens": [ids], "length": source tokens}.

Streaming (`initial_state(batch)`, then `predict_chunk(inputs, state)` repeatedly) returns for each chunk
what `predict` on the concatenation so far returns for the new part: language model and tagging give the
entries of the chunk's steps; classification and forecasting the result at the end of the chunk. Streaming
needs a unidirectional language model, classifier, tagger or forecaster. Word tokenizers: cut at whitespace.

`score(texts)` (language models) returns per text {"tokens", "log_probs" (natural log of P(t_i | <bos>, t_<i)
for every token, the first included), "log_likelihood" (their sum), "perplexity" (exp of minus their mean)}.

`generate(prompt, GenerationConfig)` streams `GeneratedToken`s, then one `GenerationEnd`
(see generation/decode.py).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from typing import Any

from .backend import no_grad, xp
from .config import GenerationConfig, ModelConfig
from .data.tokenizers import BOS_ID, PAD_ID, Tokenizer
from .errors import FailedPrecondition, InvalidInput
from .generation.decode import forecast, generate
from .models import Network, build_network
from .models.base import State, rnn_forward, zero_state
from .nn.losses import softmax
from .validate import check_positive_int

TEXT_TASKS = ("language_model", "classification", "tagging", "one_to_many", "seq2seq")
HISTORY_ROWS = 2000  # history_summary(): rows kept at most (GetModel carries them)


class Model:
    """Args: config; tokenizer (text tasks); labels (classification, tagging, one_to_many);
    norm {"mean": [F], "std": [F]} and num_features (forecasting). Weights start fresh from config.seed."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        tokenizer: Tokenizer | None = None,
        labels: list[str] | None = None,
        norm: dict | None = None,
        num_features: int = 1,
    ) -> None:
        if not isinstance(config, ModelConfig):
            raise InvalidInput(f"config: expected a ModelConfig, got {type(config).__name__}", field="config")
        config.validate()
        self.config = config
        self.task = config.task
        if self.task in TEXT_TASKS and not isinstance(tokenizer, Tokenizer):
            raise InvalidInput(
                f"tokenizer: task {self.task!r} needs a Tokenizer, got {type(tokenizer).__name__}",
                field="tokenizer",
            )
        needs_labels = self.task in ("classification", "tagging", "one_to_many")
        if needs_labels and (not labels or len(set(labels)) != len(labels)):
            raise InvalidInput(
                f"labels: task {self.task!r} needs a list of distinct labels, got {labels!r}", field="labels"
            )
        if self.task == "classification" and len(labels) < 2:
            raise InvalidInput(f"labels: a classifier needs at least 2 classes, got {labels}", field="labels")
        self.tokenizer = tokenizer if self.task in TEXT_TASKS else None
        self.labels = list(labels) if needs_labels else None
        self.label_index = {lab: i for i, lab in enumerate(self.labels or [])}
        self.num_features = check_positive_int("num_features", num_features)
        self.norm = self._check_norm(norm) if self.task == "forecasting" else None
        vocab = tokenizer.vocab_size if self.tokenizer is not None else 0
        self.net: Network = build_network(
            config, vocab_size=vocab, num_labels=len(self.labels or []), num_features=self.num_features
        )
        self.metrics: dict[str, float] = {}
        self.history: list[dict] = []
        self.training: dict[str, Any] = {}
        self.created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.trained = False

    def _check_norm(self, norm: dict | None) -> dict:
        """Per-feature {"mean": [F], "std": [F]} (std > 0); None means no normalisation."""
        F = self.num_features
        if norm is None:
            return {"mean": [0.0] * F, "std": [1.0] * F}
        try:
            mean = [float(v) for v in norm["mean"]]
            std = [float(v) for v in norm["std"]]
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(
                f"norm: expected {{'mean': [{F} numbers], 'std': [{F} numbers]}}", field="norm"
            ) from None
        if len(mean) != F or len(std) != F or not all(s > 0 for s in std):
            raise InvalidInput(f"norm: expected {F} means and {F} positive stds, got {norm!r}", field="norm")
        return {"mean": mean, "std": std}

    # ----------------------------------------------------------------------------------------- metadata
    @property
    def params(self) -> dict[str, xp.ndarray]:
        return self.net.params

    def freeze(self, frozen: bool = True) -> Model:
        """For serving: the recurrent layers keep the weight copies inference makes (predictions and
        generation stop copying 4 G H (I + H) floats per call); parameter changes are not seen by inference
        until `freeze(False)`. Training forwards never use the copies. See `RecurrentBase.freeze`."""
        self.net.freeze(frozen)
        return self

    def info(self) -> dict:
        """JSON-able description: task, cell, sizes, vocabulary, labels, metrics, creation time, training."""
        c = self.config
        return {
            "task": self.task,
            "cell": c.cell,
            "hidden_size": c.hidden_size,
            "num_layers": c.num_layers,
            "embedding_dim": c.embedding_dim,
            "bidirectional": c.bidirectional,
            "dropout": c.dropout,
            "forget_bias": c.forget_bias,
            "init": c.init,
            "vocab_size": self.tokenizer.vocab_size if self.tokenizer else 0,
            "tokenizer": self.tokenizer.kind if self.tokenizer else None,
            "labels": list(self.labels or []),
            "num_features": self.num_features,
            "window": c.window if self.task == "forecasting" else None,
            "max_length": c.max_length,
            "num_parameters": self.net.num_parameters(),
            "metrics": dict(self.metrics),
            "created": self.created,
            "training": dict(self.training),
            "dtype": c.dtype,
        }

    def history_summary(self, max_rows: int = HISTORY_ROWS) -> list[dict]:
        """The training history (one dict per evaluation: step, epoch, train_loss, validation metrics) with at
        most `max_rows` rows, picked evenly over the run (the first and the last always kept)."""
        max_rows = check_positive_int("max_rows", max_rows, minimum=2)
        rows = [dict(r) for r in self.history if isinstance(r, dict)]
        if len(rows) <= max_rows:
            return rows
        picks = xp.unique(xp.round(xp.linspace(0, len(rows) - 1, max_rows)).astype(xp.int64))
        return [rows[int(i)] for i in picks]

    def __repr__(self) -> str:
        return (
            f"Model(task={self.task!r}, cell={self.config.cell!r}, hidden_size={self.config.hidden_size}, "
            f"num_layers={self.config.num_layers}, parameters={self.net.num_parameters()})"
        )

    # ----------------------------------------------------------------------------------------- encoding
    def encode_text(self, name: str, text: Any, *, allow_empty: bool = False) -> list[int]:
        """Token ids of one input text, checked against the model's maximum length."""
        if not isinstance(text, str):
            raise InvalidInput(f"{name}: expected a str, got {type(text).__name__}", field=name)
        ids = self.tokenizer.encode(text)
        if not ids and not allow_empty:
            raise InvalidInput(f"{name}: expected a non-empty text, got {text!r}", field=name)
        self.check_length(name, len(ids))
        return ids

    def check_length(self, name: str, n: int) -> None:
        if n > self.config.max_length:
            raise InvalidInput(
                f"{name}: expected at most max_length={self.config.max_length} tokens, got {n}", field=name
            )

    def label_id(self, name: str, label: Any) -> int:
        if not isinstance(label, str) or label not in self.label_index:
            shown = self.labels if len(self.labels) <= 20 else self.labels[:20] + ["..."]
            raise InvalidInput(
                f"{name}: expected one of the trained labels {shown}, got {label!r}", field=name
            )
        return self.label_index[label]

    def _dtype(self):
        return xp.dtype(self.config.dtype)

    # ----------------------------------------------------------------------------------------- inference
    def _check_inputs(self, inputs: Any) -> list:
        if isinstance(inputs, str) or not isinstance(inputs, list | tuple):
            raise InvalidInput(
                f"inputs: expected a list with one entry per sequence, got {type(inputs).__name__}",
                field="inputs",
            )
        if not inputs:
            raise InvalidInput("inputs: expected at least one sequence, got an empty list", field="inputs")
        return list(inputs)

    def predict(self, inputs: list, top_k: int = 1) -> list[dict]:
        """One result dict per input; shapes per task in the module docstring."""
        from .models import predict

        inputs = self._check_inputs(inputs)
        top_k = self._check_top_k(top_k)
        with no_grad():
            self.net.eval()
            return predict.PREDICTORS[self.task](self, inputs, top_k)

    def score(self, texts: list) -> list[dict]:
        """Log-likelihood and perplexity of each text under a language model (module docstring)."""
        from .models.score import score_language_model

        texts = self._check_inputs(texts)
        with no_grad():
            self.net.eval()
            return score_language_model(self, texts)

    def _check_top_k(self, top_k: Any) -> int:
        return check_positive_int("top_k", top_k)

    def initial_state(self, batch: int) -> dict:
        """The streaming state of `batch` independent streams before any input (see predict_chunk)."""
        batch = check_positive_int("batch", batch)
        if self.task not in ("language_model", "classification", "tagging", "forecasting"):
            raise FailedPrecondition(f"streaming prediction: not available for task {self.task!r}")
        if self.config.bidirectional:
            raise FailedPrecondition("streaming prediction: a bidirectional model needs the whole sequence")
        rnn = self.net.rnn
        state: State = zero_state(rnn, batch)
        if self.task == "language_model":  # the text is read after <bos>, as in predict
            with no_grad():
                self.net.eval()
                _, state = rnn_forward(rnn, self.net.embedding(xp.full((batch, 1), BOS_ID)), state)
        return {
            "task": self.task,
            "batch": batch,
            "rnn": state,
            "seen": [0] * batch,
            "rows": [xp.zeros((0, self.num_features), dtype=self._dtype()) for _ in range(batch)],
        }

    def predict_chunk(self, inputs: list, state: dict, top_k: int = 1) -> tuple[list[dict], dict]:
        """Feed the next chunk of every stream; returns (results as predict gives them, new state)."""
        from .models import predict

        inputs = self._check_inputs(inputs)
        top_k = self._check_top_k(top_k)
        if not isinstance(state, dict) or state.get("task") != self.task:
            raise InvalidInput("state: expected a state from this model's initial_state()", field="state")
        if len(inputs) != state["batch"]:
            raise InvalidInput(
                f"inputs: expected {state['batch']} chunks (one per stream), got {len(inputs)}",
                field="inputs",
            )
        with no_grad():
            self.net.eval()
            return predict.predict_chunk(self, inputs, state, top_k)

    def generate(self, prompt: Any, config: GenerationConfig | None = None, should_stop=None,
                 deterministic: bool = False) -> Iterator:
        """Stream GeneratedToken records, then one GenerationEnd (see generation/decode.py); `deterministic`:
        the server's --deterministic kernel policy (tokens equal to those of any batch up to 64 rows)."""
        return generate(self, prompt, config or GenerationConfig(), should_stop, deterministic)

    def forecast(self, series: Any, horizon: int, future_exog: Any = None) -> list[float]:
        """Multi-step forecast, feeding predictions back; future_exog (horizon, F-1) when F > 1."""
        return forecast(self, series, horizon, future_exog)

    # ----------------------------------------------------------------------------------------- helpers
    def probs(self, logits) -> xp.ndarray:
        return softmax(xp.asarray(logits, dtype=xp.float64))

    def pad(self, seqs: list[list[int]]) -> tuple[xp.ndarray, xp.ndarray]:
        """Right-pad id lists with <pad>: (B, T) ids and (B,) lengths."""
        lengths = xp.array([len(s) for s in seqs], dtype=xp.int64)
        ids = xp.full((len(seqs), int(lengths.max())), PAD_ID, dtype=xp.int64)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
        return ids, lengths
