"""Generate text from an exported language-model step graph with onnxruntime alone (nothing from rnn-service).

Everything needed comes from the .onnx file: the vocabulary ("vocab" metadata), how to split text into tokens
and join them back ("tokenizer" in "rnn_config"), the ids to read before the prompt ("prompt_prefix") and the
ids never to generate ("never_generate"). Decoding is greedy (argmax), as the engine's temperature=0.

    # lm_step.onnx from rnn_engine.onnx_export: save_onnx(export_model(model, "step"), path)
    python examples/onnx_generate.py lm_step.onnx --prompt "ROMEO:" --max-new-tokens 200

Prints the generated continuation (not the prompt).
"""

from __future__ import annotations

import argparse
import codecs
import json
import re
import sys

import numpy as np
import onnxruntime as ort


def load(path: str):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    config = json.loads(meta["rnn_config"])
    if config.get("task") != "language_model" or config.get("graph") != "step":
        sys.exit(f"{path}: expected a language_model 'step' graph, "
                 f"got {config.get('task')} {config.get('graph')}")
    tokens = [entry["token"] for entry in json.loads(meta["vocab"])]
    return session, config, tokens


def encode(text: str, tokenizer: dict, tokens: list[str], unk: int) -> list[int]:
    """Text -> ids, following the tokenizer description in the metadata."""
    if tokenizer["kind"] == "byte":
        return [b + tokenizer["byte_offset"] for b in text.encode("utf-8")]
    index = {t: i for i, t in enumerate(tokens)}
    if tokenizer["kind"] == "word":
        pieces = re.findall(tokenizer["pattern"], text.lower() if tokenizer["lowercase"] else text)
    else:
        pieces = list(text)
    return [index.get(p, unk) for p in pieces]


class Detokenizer:
    """Ids -> text, one id at a time (bytes are held back until a UTF-8 character is complete)."""

    def __init__(self, tokenizer: dict, tokens: list[str], special: dict[str, int],
                 previous: int | None) -> None:
        self.tok, self.tokens, self.special, self.previous = tokenizer, tokens, special, previous
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, i: int) -> str:
        if self.tok["kind"] == "byte":
            return self.utf8.decode(bytes([i - self.tok["byte_offset"]]))
        text, prev = self.tokens[i], self.previous
        self.previous = i
        at_start = prev is None or (prev < len(self.special) and prev != self.special["unk"])
        if self.tok["kind"] == "char" or at_start:
            return text
        if text in self.tok["attach_left"] or self.tokens[prev] in self.tok["attach_right"]:
            return text
        return " " + text

    def flush(self) -> str:
        return self.utf8.decode(b"", final=True) if self.tok["kind"] == "byte" else ""


def generate(path: str, prompt: str, max_new_tokens: int) -> str:
    session, config, tokens = load(path)
    special = config["special_tokens"]
    prompt_ids = encode(prompt, config["tokenizer"], tokens, special["unk"])
    shape = (config["num_layers"], 1, config["hidden_size"])
    feeds = {i.name: np.zeros(shape, np.float32) for i in session.get_inputs() if i.name in ("h", "c")}
    outputs = [o.name for o in session.get_outputs()]
    logits = None
    for token in config["prompt_prefix"] + prompt_ids:  # read <bos> and the prompt
        logits, feeds = step(session, outputs, token, feeds)
    out = Detokenizer(config["tokenizer"], tokens, special, prompt_ids[-1] if prompt_ids else None)
    text = ""
    for _ in range(max_new_tokens):
        scores = logits.astype(np.float64)
        scores[config["never_generate"]] = -np.inf
        token = int(np.argmax(scores))
        if token == special["eos"]:
            break
        text += out.push(token)
        logits, feeds = step(session, outputs, token, feeds)
    return text + out.flush()


def step(session, outputs: list[str], token: int, state: dict) -> tuple[np.ndarray, dict]:
    """Run the step graph once: (logits (V,), the next state feeds)."""
    values = session.run(None, {"token": np.array([token], np.int64), **state})
    result = dict(zip(outputs, values, strict=True))
    new_state = {"h": result["h_n"], **({"c": result["c_n"]} if "c_n" in result else {})}
    return result["logits"][0], new_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an exported language-model step graph (.onnx)")
    parser.add_argument("--prompt", default="", help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate at most")
    args = parser.parse_args()
    if args.max_new_tokens < 1:
        parser.error(f"--max-new-tokens: expected an int >= 1, got {args.max_new_tokens}")
    sys.stdout.write(generate(args.model, args.prompt, args.max_new_tokens) + "\n")


if __name__ == "__main__":
    main()
