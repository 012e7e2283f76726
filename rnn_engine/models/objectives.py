"""Per model kind: encoded training data, the batch of a step, one loss/backward step, validation metrics.

Batches are a pure function of (seed, step), so a resumed run sees exactly the batches an uninterrupted one
would: epoch e shuffles with `default_rng([seed, e])`; a language model walks its B contiguous streams in
windows of `bptt` tokens and carries the (detached) state from window to window, reset each epoch.
"""

from __future__ import annotations

import math

from ..backend import no_grad, xp
from ..data.tokenizers import BOS_ID, EOS_ID
from ..errors import InvalidInput
from ..nn.losses import cross_entropy, mse
from .base import detach

IGNORE = -100


def macro_f1(y_true, y_pred) -> float:
    """Mean F1 over the classes that occur in the targets or the predictions."""
    f1s = []
    for c in xp.union1d(y_true, y_pred):
        tp = float(((y_pred == c) & (y_true == c)).sum())
        fp = float(((y_pred == c) & (y_true != c)).sum())
        fn = float(((y_pred != c) & (y_true == c)).sum())
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(xp.mean(f1s)) if f1s else 0.0


class Objective:
    """Base: `steps_per_epoch`, `batch(step)`, `train_step(batch, carry)`, `evaluate()`; `main_metric`."""

    main_metric, higher_is_better = "loss", False

    def __init__(self, model, tcfg) -> None:
        self.model, self.net, self.tcfg = model, model.net, tcfg

    def _indices(self, step: int, n: int) -> xp.ndarray:
        B = min(self.tcfg.batch_size, n)
        per_epoch = max(1, n // B)
        epoch, i = divmod(step, per_epoch)
        perm = xp.random.default_rng([self.tcfg.seed, epoch]).permutation(n)
        return perm[i * B : (i + 1) * B]

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch


class LanguageModelObjective(Objective):
    def __init__(self, model, tcfg, train_ids: list[int], valid_ids: list[int]) -> None:
        super().__init__(model, tcfg)
        B, T = tcfg.batch_size, tcfg.bptt
        L = len(train_ids) // B
        if L < T:
            raise InvalidInput(
                f"corpus: {len(train_ids)} training tokens give streams of {L} tokens for batch_size={B}, "
                f"shorter than one bptt window of {T}; give more text or lower batch_size / bptt",
                field="corpus"
            )
        self.rows = self._streams(train_ids, B, L)  # (B, L + 1)
        self.steps_per_epoch = math.ceil(L / T)
        Bv = max(1, min(B, len(valid_ids) // T))
        Lv = len(valid_ids) // Bv
        self.valid_rows = self._streams(valid_ids, Bv, Lv) if Lv >= 1 else None
        self._baseline: dict | None = None

    @staticmethod
    def _streams(ids, B: int, L: int) -> xp.ndarray:
        """B contiguous streams, each <bos> then L tokens: inputs row[:-1], targets row[1:]."""
        body = xp.asarray(ids[: B * L], dtype=xp.int64).reshape(B, L)
        return xp.concatenate([xp.full((B, 1), BOS_ID, dtype=xp.int64), body], axis=1)

    def batch(self, step: int):
        w = step % self.steps_per_epoch
        T = self.tcfg.bptt
        chunk = self.rows[:, w * T : (w + 1) * T + 1]
        return chunk[:, :-1], chunk[:, 1:], w == 0

    def train_step(self, batch, carry):
        x, y, first = batch
        logits, state = self.net.forward(x, None, None if first else carry)
        loss, d = cross_entropy(logits, y)
        self.net.backward(d)
        return loss, x.size, detach(state)

    def _eval_columns(self) -> int:
        """Target columns of valid_rows one evaluation scores: all, or whole bptt windows up to the cap."""
        T, (B, cols) = self.tcfg.bptt, self.valid_rows.shape
        cols -= 1
        if not self.tcfg.max_eval_items:
            return cols
        windows = math.ceil(self.tcfg.max_eval_items * T / (B * T))
        return min(cols, windows * T)

    def baseline(self) -> dict | None:
        """The best n-gram (rnn_engine.ngram.best_baseline) fitted once on the training stream and scored on
        exactly the validation tokens `evaluate` scores; None without validation data or when disabled."""
        if self.valid_rows is None or not self.tcfg.ngram_baseline:
            return None
        if self._baseline is None:
            from ..ngram import best_baseline

            cols = self._eval_columns()
            train = self.rows[:, 1:].reshape(-1)  # the training streams' tokens, in corpus order
            streams = [row[: cols + 1] for row in self.valid_rows]  # <bos> then the scored tokens
            self._baseline = best_baseline(train, streams, self.model.tokenizer.vocab_size)
        return self._baseline

    def evaluate(self) -> dict[str, float]:
        if self.valid_rows is None:
            return {}
        T, total, count, state = self.tcfg.bptt, 0.0, 0, None
        cols = self._eval_columns()
        with no_grad():
            for w in range(0, cols, T):
                chunk = self.valid_rows[:, w : min(w + T, cols) + 1]
                logits, state = self.net.forward(chunk[:, :-1], None, state)
                loss, _ = cross_entropy(logits, chunk[:, 1:], reduction="sum")
                total, count = total + loss, count + chunk[:, 1:].size
        mean = total / count
        bits = mean / math.log(2)
        metrics = {"loss": mean, "perplexity": math.exp(min(mean, 700.0)), "bits_per_token": bits}
        if self.model.tokenizer.kind == "char":  # one token per character
            metrics["bits_per_char"] = bits
        metrics["validation_items"] = float(count)  # tokens scored
        ngram = self.baseline()
        if ngram is not None:  # how far the network is ahead of counting, on the same tokens
            metrics.update(ngram_perplexity=ngram["perplexity"], ngram_order=float(ngram["order"]),
                           perplexity_vs_ngram=metrics["perplexity"] / ngram["perplexity"])
        return metrics


class _ExampleObjective(Objective):
    """Objectives over independent examples (everything but the language model)."""

    def __init__(self, model, tcfg, train: list, valid: list) -> None:
        super().__init__(model, tcfg)
        if not train:
            raise InvalidInput("dataset: expected at least one training example, got none", field="dataset")
        self.train, self.valid = train, valid
        self.steps_per_epoch = max(1, len(train) // min(tcfg.batch_size, len(train)))

    def batch(self, step: int):
        return [self.train[i] for i in self._indices(step, len(self.train))]

    def _n_valid(self) -> int:
        """Validation examples one evaluation covers (all of them unless max_eval_items caps it)."""
        return min(len(self.valid), self.tcfg.max_eval_items or len(self.valid))

    def _valid_batches(self):
        valid = self.valid[: self.tcfg.max_eval_items or len(self.valid)]
        B = self.tcfg.batch_size
        return [valid[i : i + B] for i in range(0, len(valid), B)]


class _CrossEntropyObjective(_ExampleObjective):
    """Example objectives trained on the cross-entropy of `_forward(examples) -> (logits, targets)`
    (targets IGNORE where there is nothing to predict)."""

    def _forward(self, examples):
        raise NotImplementedError

    def train_step(self, batch, carry):
        logits, y = self._forward(batch)
        loss, d = cross_entropy(logits, y)
        self.net.backward(d)
        return loss, len(batch), None

    def _valid_outputs(self):
        """Per validation chunk, without caching for backward: (summed loss, logits, targets, kept mask)."""
        for chunk in self._valid_batches():
            with no_grad():
                logits, y = self._forward(chunk)
            loss, _ = cross_entropy(logits, y, reduction="sum")
            yield loss, logits, y, y != IGNORE


class SequenceLabelObjective(_CrossEntropyObjective):
    """Classification (one label per sequence) and tagging (one per step); examples are (ids, label ids)."""

    main_metric, higher_is_better = "accuracy", True

    def _tensors(self, examples):
        ids, lengths = self.model.pad([e[0] for e in examples])
        if self.model.task == "classification":
            return ids, lengths, xp.asarray([e[1] for e in examples], dtype=xp.int64)
        y = xp.full(ids.shape, IGNORE, dtype=xp.int64)
        for b, e in enumerate(examples):
            y[b, : len(e[1])] = e[1]
        return ids, lengths, y

    def _forward(self, examples):
        ids, lengths, y = self._tensors(examples)
        return self.net.forward(ids, lengths)[0], y

    def evaluate(self) -> dict[str, float]:
        if not self.valid:
            return {}
        total, count, trues, preds = 0.0, 0, [], []
        for loss, logits, y, keep in self._valid_outputs():
            total, count = total + loss, count + int(keep.sum())
            trues.append(y[keep])
            preds.append(logits.argmax(-1)[keep])
        t, p = xp.concatenate(trues), xp.concatenate(preds)
        return {"loss": total / count, "accuracy": float((t == p).mean()), "macro_f1": macro_f1(t, p),
                "validation_items": float(self._n_valid())}


class DecoderObjective(_CrossEntropyObjective):
    """one_to_many (examples (label id, ids)) and seq2seq ((source ids, target ids)), teacher forcing."""

    def _tensors(self, examples):
        dec_in, lengths = self.model.pad([[BOS_ID] + e[1] for e in examples])
        y = xp.full(dec_in.shape, IGNORE, dtype=xp.int64)
        for b, e in enumerate(examples):
            y[b, : len(e[1]) + 1] = e[1] + [EOS_ID]
        return dec_in, y

    def _forward(self, examples):
        dec_in, y = self._tensors(examples)
        if self.model.task == "one_to_many":
            return self.net.forward(xp.asarray([e[0] for e in examples]), dec_in), y
        src, src_len = self.model.pad([e[0] for e in examples])
        return self.net.forward(src, src_len, dec_in), y

    def evaluate(self) -> dict[str, float]:
        if not self.valid:
            return {}
        total, count, correct = 0.0, 0, 0
        for loss, logits, y, keep in self._valid_outputs():
            total, count = total + loss, count + int(keep.sum())
            correct += int((logits.argmax(-1) == y)[keep].sum())
        mean = total / count
        return {"loss": mean, "perplexity": math.exp(min(mean, 700.0)), "token_accuracy": correct / count,
                "validation_items": float(self._n_valid())}


class ForecastObjective(_ExampleObjective):
    """Examples are indices i of the normalised table (N, F): inputs rows [i-K, i), target table[i, 0]."""

    main_metric = "mse"

    def __init__(self, model, tcfg, table, train_idx: list[int], valid_idx: list[int]) -> None:
        super().__init__(model, tcfg, train_idx, valid_idx)
        self.table = xp.asarray(table, dtype=model.net.rnn.dtype)

    def _tensors(self, idx):
        K = self.model.config.window
        x = xp.stack([self.table[i - K : i] for i in idx])  # (B, K, F)
        return x, self.table[list(idx), 0][:, None]  # (B, 1)

    def train_step(self, batch, carry):
        x, y = self._tensors(batch)
        pred, _ = self.net.forward(x)
        loss, d = mse(pred, y)
        self.net.backward(d)
        return loss, len(batch), None

    def evaluate(self) -> dict[str, float]:
        if not self.valid:
            return {}
        std, sq, ab, naive, n = self.model.norm["std"][0], 0.0, 0.0, 0.0, 0
        with no_grad():
            for chunk in self._valid_batches():
                x, y = self._tensors(chunk)
                pred, _ = self.net.forward(x)
                err = (pred - y)[:, 0] * std
                sq, ab, n = sq + float((err**2).sum()), ab + float(abs(err).sum()), n + len(chunk)
                naive += float(abs((x[:, -1, 0] - y[:, 0]) * std).sum())
        mse_ = sq / n
        return {"loss": mse_ / std**2, "mse": mse_, "mae": ab / n, "naive_mae": naive / n,
                "validation_items": float(n)}
