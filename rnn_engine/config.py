"""Typed settings of a model, a training run and a generation request, each a dataclass with defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInput
from .validate import check_choice, check_number, check_positive_int

TASKS = ("language_model", "classification", "tagging", "forecasting", "one_to_many", "seq2seq")
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
TOKENIZERS = ("char", "word", "byte")
OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad", "rmsprop")
SCHEDULES = ("constant", "step", "cosine")
DTYPES = ("float32", "float64")


class _Serialisable:
    """to_dict / from_dict shared by the config dataclasses (unknown keys are an error, not ignored)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise InvalidInput(
                f"{cls.__name__}: expected a dict, got {type(data).__name__}",
                field=cls.__name__,
            )
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"{cls.__name__}: unknown settings {unknown}", field=cls.__name__)
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass
class ModelConfig(_Serialisable):
    """Architecture of a model; stored in its manifest."""

    task: str = "language_model"  # one of TASKS
    cell: str = "lstm"  # one of CELLS
    hidden_size: int = 128  # H, features of each recurrent state
    num_layers: int = 1  # stacked recurrent layers
    embedding_dim: int = 64  # E, token embedding size (unused by forecasting)
    dropout: float = 0.0  # on embeddings, between layers and before the head (training only)
    bidirectional: bool = False  # classification and tagging only
    init: str = "default"  # recurrent weights: default | xavier | orthogonal | identity (IRNN)
    forget_bias: float | None = None  # LSTM: initial forget-gate bias (b_ih block; b_hh's 0); None: PyTorch's
    tokenizer: str = "char"  # char | word | byte (unused by forecasting)
    max_length: int = 10000  # longest sequence accepted at prediction time, in tokens or values
    window: int = 24  # forecasting: K past values per input window
    residual: bool = (
        True  # forecasting: predict the change from the last value (starts as the naive forecast)
    )
    dtype: str = "float32"  # float32 | float64
    seed: int = 0  # weight initialisation and dropout

    def validate(self) -> None:
        check_choice("task", self.task, TASKS)
        check_choice("cell", self.cell, CELLS)
        check_choice("tokenizer", self.tokenizer, TOKENIZERS)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("init", self.init, ("default", "xavier", "orthogonal", "identity"))
        for name in ("hidden_size", "num_layers", "embedding_dim", "max_length", "window"):
            check_positive_int(name, getattr(self, name), 1)
        check_positive_int("seed", self.seed, 0)
        check_number("dropout", self.dropout, 0.0, 0.95)
        if self.forget_bias is not None:
            check_number("forget_bias", self.forget_bias, -100.0, 100.0)
            if self.cell != "lstm":
                raise InvalidInput(
                    f"forget_bias: only an lstm has a forget gate, got cell {self.cell!r}",
                    field="forget_bias",
                )
        for name in ("bidirectional", "residual"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(f"{name}: expected a bool, got {getattr(self, name)!r}", field=name)
        if self.bidirectional and self.task not in ("classification", "tagging"):
            raise InvalidInput(
                "bidirectional: only classification and tagging can be bidirectional, "
                f"got task {self.task!r}",
                field="bidirectional",
            )


@dataclass
class TrainConfig(_Serialisable):
    """How to train: length, batches, optimizer, schedule, regularisation, evaluation and checkpoints."""

    steps: int = 1000  # optimizer steps; 0 means use `epochs`
    epochs: int = 0  # passes over the training data when steps == 0
    batch_size: int = 32  # sequences (or LM streams) per step
    bptt: int = 64  # language model: window length of truncated BPTT, in tokens
    optimizer: str = "adam"  # one of OPTIMIZERS
    lr: float = 2e-3  # peak learning rate
    momentum: float = 0.0  # SGD and RMSprop
    rmsprop_alpha: float = 0.99  # RMSprop: smoothing constant of the squared-gradient average (torch's alpha)
    weight_decay: float = 0.0  # L2 (SGD/Adam/Adagrad) or decoupled (AdamW)
    schedule: str = "constant"  # constant | step | cosine (with warm-up)
    warmup_steps: int = 0  # linear warm-up, cosine schedule
    step_size: int = 1000  # step schedule: multiply lr by gamma every step_size steps
    gamma: float = 0.5  # step schedule factor
    clip_norm: float = 5.0  # global gradient-norm clip; 0 disables
    eval_every: int = 100  # steps between validation passes (and at the end)
    patience: int = 0  # early stopping: evaluations without improvement; 0 disables
    checkpoint_every: int = 0  # steps between checkpoints (needs checkpoint_dir); 0: only best and final
    validation_fraction: float = 0.1  # held out when the dataset has no validation part
    max_eval_items: int = 0  # cap on validation sequences (LM: bptt windows x streams) per evaluation; 0: all
    seed: int = 0  # batch order and held-out split
    ngram_baseline: bool = True  # language models: report the best n-gram's validation perplexity beside it
    time_budget: float = 0.0  # seconds of training (resumed runs count), then keep the best model; 0: none

    def validate(self) -> None:
        if not isinstance(self.ngram_baseline, bool):
            raise InvalidInput(
                f"ngram_baseline: expected a bool, got {self.ngram_baseline!r}",
                field="ngram_baseline",
            )
        for name, low in (
            ("steps", 0),
            ("epochs", 0),
            ("batch_size", 1),
            ("bptt", 2),
            ("warmup_steps", 0),
            ("step_size", 1),
            ("eval_every", 1),
            ("patience", 0),
            ("checkpoint_every", 0),
            ("max_eval_items", 0),
            ("seed", 0),
        ):
            check_positive_int(name, getattr(self, name), low)
        if self.steps == 0 and self.epochs == 0:
            raise InvalidInput("steps: expected steps >= 1 or epochs >= 1, got both 0", field="steps")
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_number("lr", self.lr, 0.0, open_low=True)
        check_number("momentum", self.momentum, 0.0, 1.0)
        check_number("rmsprop_alpha", self.rmsprop_alpha, 0.0, 1.0)
        check_number("weight_decay", self.weight_decay, 0.0)
        check_number("gamma", self.gamma, 0.0, 1.0, open_low=True)
        check_number("clip_norm", self.clip_norm, 0.0)
        check_number("time_budget", self.time_budget, 0.0)
        check_number("validation_fraction", self.validation_fraction, 0.0, 0.5, open_low=True)


@dataclass
class GenerationConfig(_Serialisable):
    """Sampling settings for `Model.generate`; temperature 0 means greedy."""

    max_new_tokens: int = 200  # tokens (or forecast values) to produce at most
    temperature: float = 1.0  # 0: greedy (argmax)
    top_k: int = 0  # keep the k most likely tokens; 0: all
    top_p: float = 1.0  # nucleus: smallest set with probability >= top_p
    repetition_penalty: float = 1.0  # > 1 discourages tokens already present (CTRL rule)
    stop: list[str] = field(default_factory=list)  # finish when the output ends with one of these
    seed: int | None = None  # same seed, same text; None: fresh entropy
    beam_size: int = 1  # seq2seq: beam search when > 1
    label: str | None = None  # one_to_many: the class that conditions the output

    def validate(self) -> None:
        check_positive_int("max_new_tokens", self.max_new_tokens, 1)
        check_number("temperature", self.temperature, 0.0, 100.0)
        check_positive_int("top_k", self.top_k, 0)
        check_number("top_p", self.top_p, 0.0, 1.0, open_low=True)
        check_number("repetition_penalty", self.repetition_penalty, 0.0, open_low=True)
        check_positive_int("beam_size", self.beam_size, 1)
        if self.seed is not None:
            check_positive_int("seed", self.seed, 0)
        if not isinstance(self.stop, list | tuple) or not all(isinstance(s, str) and s for s in self.stop):
            raise InvalidInput(f"stop: expected a list of non-empty strings, got {self.stop!r}", field="stop")
        if self.label is not None and not isinstance(self.label, str):
            raise InvalidInput(f"label: expected a string or None, got {self.label!r}", field="label")
