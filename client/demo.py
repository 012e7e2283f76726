"""`python -m client.demo` (make run): start a server, train a character model, stream text, export ONNX.

Every step runs the real `rnnctl` command against a real `rnn-server` subprocess, so the output shows what a
user would type. Any failed step stops the demo with a message naming the step and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console
from rich.rule import Rule

from .cli import cli
from .errors import RnnError
from .rnn_client import RnnClient
from .types import Prediction

console = Console(stderr=True, highlight=False)
PROBE = "def functio"  # a prefix whose continuation the model should know after a short training


class DemoFailed(Exception):
    """A demo step failed; the message says which and why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(model_dir: Path, log_path: Path, *, startup_timeout: float = 60.0) -> Iterator[str]:
    """Start `python -m server` on a free port; yield its address once grpc health says SERVING."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port),
           "--model-dir", str(model_dir), "--metrics-port", "0"]
    console.print(f"[bold]$ rnn-server[/] {shlex.join(cmd[3:])}")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_serving(proc, address, log_path, startup_timeout)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_serving(proc: subprocess.Popen, address: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with RnnClient(address, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DemoFailed(f"the server exited with code {proc.returncode} while starting:\n"
                                 + _tail(log_path))
            try:
                if client.health() == "serving":
                    return
            except RnnError:
                pass
            time.sleep(0.2)
    raise DemoFailed(f"the server did not report SERVING within {timeout:.0f}s:\n" + _tail(log_path))


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def rnnctl(title: str, *args: str) -> None:
    """Run one rnnctl command in this process, showing it as the user would type it."""
    console.print(Rule(title, style="cyan"))
    shown = [a if len(a) < 60 else a[:57] + "..." for a in args[2:]]  # without "--address HOST:PORT"
    console.print(f"[bold]$ rnnctl[/] {shlex.join(shown)}")
    try:
        code = cli.main(args=list(args), prog_name="rnnctl", standalone_mode=False)
    except click.ClickException as e:
        raise DemoFailed(f"step {title!r} failed: {e.format_message()}") from e
    if code not in (None, 0):
        raise DemoFailed(f"step {title!r} failed: `rnnctl {shlex.join(shown)}` exited with code {code}")


def check_onnx(path: Path, served: Prediction) -> None:
    """Run the exported file with onnxruntime on PROBE and compare its next-character probabilities with the
    server's; skipped (with a note) when onnxruntime is not installed."""
    console.print(Rule("6. run the ONNX file with onnxruntime", style="cyan"))
    try:
        import numpy as np
        import onnx
        import onnxruntime
    except ImportError:
        console.print("onnxruntime is not installed; skipping the check (pip install onnxruntime)")
        return
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if "vocab" not in meta:
        raise DemoFailed(f"step 'onnx check' failed: {path} has no vocabulary in its metadata")
    vocab = [entry["token"] for entry in json.loads(meta["vocab"])]
    index = {tok: i for i, tok in enumerate(vocab)}
    ids = [index["<bos>"]] + [index.get(ch, index["<unk>"]) for ch in PROBE]  # LMs read text after <bos>
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs = session.run(["probabilities"], {"tokens": np.array([ids], np.int64),
                                            "lengths": np.array([len(ids)], np.int64)})[0][0, -1]
    served_top = served.top_k[-1]
    diff = max(abs(float(probs[s.id]) - s.probability) for s in served_top)
    best = int(np.argmax(probs))
    console.print(f"onnxruntime after {PROBE!r}: most likely next character {vocab[best]!r} "
                  f"(p={probs[best]:.3f}); largest difference from the server over its top 5: {diff:.1e}")
    if best != served_top[0].id or diff > 1e-4:
        raise DemoFailed(f"step 'onnx check' failed: onnxruntime disagrees with the server "
                         f"(max difference {diff:.2e})")


def report_baseline(metrics: dict[str, float]) -> None:
    """How far the LSTM is ahead of counting: its validation perplexity beside the best n-gram's."""
    if "ngram_perplexity" not in metrics:
        raise DemoFailed("step 'baseline' failed: the server reported no n-gram baseline for the model")
    console.print(f"validation perplexity: LSTM {metrics['perplexity']:.3f}, best n-gram (order "
                  f"{metrics['ngram_order']:.0f}) {metrics['ngram_perplexity']:.3f}: ratio "
                  f"{metrics['perplexity_vs_ngram']:.3f} (below 1: the LSTM is ahead)")


def run(args: argparse.Namespace, workdir: Path) -> None:
    from rnn_engine.corpus import default_corpus

    corpus = workdir / "pydoc_corpus.txt"
    corpus.write_text(default_corpus(max_chars=args.corpus_chars), encoding="utf-8")
    console.print(f"corpus: {corpus.stat().st_size:,} characters of Python's own help pages (pydoc topics)")
    model = "demo-char-lstm"
    onnx_path = Path(args.output_dir or workdir) / f"{model}.onnx"
    server = (contextlib.nullcontext(args.address) if args.address  # a running server, e.g. in docker compose
              else running_server(workdir / "models", workdir / "server.log"))
    with server as address:
        base = ["--address", address]
        rnnctl("1. train a character-level LSTM", *base, "train", str(corpus), "--name", model,
               "--task", "language_model", "--cell", "lstm", "--tokenizer", "char",
               "--hidden-size", str(args.hidden_size), "--embedding-dim", "32", "--steps", str(args.steps),
               "--batch-size", "32", "--seq-len", "48", "--lr", "0.01", "--seed", "0",
               "--on-interrupt", "cancel", "--overwrite")
        with RnnClient(address, timeout=30) as client:
            report_baseline(client.get_model(model).metrics)
        rnnctl("2. the stored model", *base, "models", "list")
        rnnctl("3. stream generated text (tokens printed as they arrive)", *base, "generate", model, "The ",
               "--max-new-tokens", "300", "--temperature", "0.6", "--seed", "1")
        rnnctl("4. what the model expects next", *base, "predict", model, PROBE, "--top-k", "3")
        rnnctl("5. export to ONNX", *base, "export", model, "--output", str(onnx_path))
        if not onnx_path.is_file() or onnx_path.stat().st_size == 0:
            raise DemoFailed(f"step 'export' failed: {onnx_path} was not written")
        with RnnClient(address, timeout=30) as client:
            check_onnx(onnx_path, client.predict(model, [PROBE], top_k=5)[0])
    console.print(Rule("done", style="green"))
    if args.address:  # not ours to stop
        console.print(f"[green]the demo finished; the server at {args.address} keeps running.[/]")
    else:
        console.print("[green]server stopped; the demo finished.[/]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800, help="training steps (default 800)")
    parser.add_argument("--hidden-size", type=int, default=192, help="LSTM hidden size (default 192)")
    parser.add_argument("--corpus-chars", type=int, default=200_000, help="corpus prefix to train on")
    parser.add_argument("--output-dir", help="keep the ONNX file here (default: a temporary directory)")
    parser.add_argument("--address", help="use the server at HOST:PORT instead of starting one")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="rnn-demo-") as tmp:
            run(args, Path(tmp))
    except DemoFailed as e:
        console.print(f"[bold red]demo failed:[/] {e}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]demo interrupted[/]")
        return 130
    console.print(f"total time {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
