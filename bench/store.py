"""The PostgreSQL store beside the directory store: `python -m bench.store [--repeats R] [--quick] [--json]`.

Starts a throwaway PostgreSQL cluster (tests/pg/conftest.py Cluster, or `--store URL`), saves one small
character LSTM both into a model directory and into the database, and starts `python -m server` on each
(`dir`: --model-dir, `pg`: --store, its own empty cache directory). Then, alternating between the two servers
(medians over repeats):
  - Predict: calls per second, one client back to back (one 32-character text per call);
  - StreamGenerate: tokens per second of one greedy 64-token stream;
  - the database's committed transactions (pg_stat_database.xact_commit, read 11 s after each window so
    every backend has flushed its statistics) over the Predict and StreamGenerate runs, beside a window as
    long with no calls: the hot path must not touch the database (models come from the cache), so the two
    counts should be equal (both are the listeners' once-a-second liveness checks and the bench's reads);
  - save on A, served by B: a new version committed (what a worker does when a job ends) until a second
    `pg` server's Predict returns the new model's output (B polls back to back), median over repeats;
  - job-claim latency with 2 rnn-worker processes: the time between a job's QUEUED and RUNNING events
    (both stamped with time.time() on this host) for jobs submitted one at a time, median and max.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.common import alternate, emit, machine_info

PROMPT = "The "
FLUSH = 11.0  # seconds: PostgreSQL 15 backends flush their statistics within 10 s of going idle


def save_models(model_dir: Path, url: str, hidden: int) -> None:
    from rnn_engine.checkpoint import save_model
    from rnn_engine.config import ModelConfig
    from rnn_engine.model import Model
    from rnn_engine.tokenizers import EOS_ID, CharTokenizer
    from server.pg import Database
    from server.pgmodels import insert_model, read_dir

    model = Model(ModelConfig(hidden_size=hidden, num_layers=1, embedding_dim=32, seed=0),
                  tokenizer=CharTokenizer.fit([string.printable]))
    model.params["head.bias"][EOS_ID] = -50.0
    save_model(model, model_dir / "lm")
    db = Database(url)
    with db.transaction() as cur:
        insert_model(cur, "lm", read_dir(model_dir / "lm"))
    db.close()


def new_version(url: str, seed: int, hidden: int) -> None:
    from rnn_engine.checkpoint import save_model
    from rnn_engine.config import ModelConfig
    from rnn_engine.model import Model
    from rnn_engine.tokenizers import CharTokenizer
    from server.pgmodels import insert_model, read_dir

    model = Model(ModelConfig(hidden_size=hidden, num_layers=1, embedding_dim=32, seed=seed),
                  tokenizer=CharTokenizer.fit([string.printable]))
    with tempfile.TemporaryDirectory() as tmp:
        save_model(model, Path(tmp) / "lm")
        files = read_dir(Path(tmp) / "lm")
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        insert_model(cur, "lm", files)
        conn.commit()


def commits(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        return conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]


def run(url: str, repeats: int, hidden: int, quick: bool) -> dict:
    from rnn.v1 import common_pb2 as pb
    from rnn.v1 import inference_service_pb2 as ipb
    from rnn.v1 import training_service_pb2 as tpb
    from tests.crash.proc import ServerProcess
    from tests.pg.conftest import WorkerProcess
    from tests.security.helpers import LM_TEXT

    report: dict = {"machine": machine_info(1), "repeats": repeats, "hidden": hidden}
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        save_models(root / "models", url, hidden)
        started = []
        try:
            plain = ServerProcess(root / "models")
            started.append(plain)
            a = ServerProcess(root / "cache-a", "--store", url, "--max-training-jobs", "0")
            started.append(a)
            b = ServerProcess(root / "cache-b", "--store", url, "--max-training-jobs", "0")
            started.append(b)
            text = "the quick brown fox jumps over t"
            predict_req = ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text=text)])
            tokens = 16 if quick else 64
            gen_req = ipb.StreamGenerateRequest(model="lm", prompt=PROMPT, max_new_tokens=tokens,
                                                temperature=0.0)

            def predictor(server):
                return lambda: server.stubs.inference.Predict(predict_req, timeout=30)

            def generator(server):
                def stream():
                    got = sum(1 for r in server.stubs.inference.StreamGenerate(gen_req, timeout=60)
                              if r.HasField("token"))
                    if got != tokens:
                        raise RuntimeError(f"the server streamed {got} tokens, expected {tokens}")
                return stream

            for fn in (predictor(a), generator(a)):  # the first call loads the model from the database
                fn()
            time.sleep(FLUSH)
            before, t0 = commits(url), time.monotonic()
            calls = alternate({"dir": predictor(plain), "pg": predictor(a)}, repeats, target_seconds=0.5)
            streams = alternate({"dir": generator(plain), "pg": generator(a)}, repeats, target_seconds=0.5)
            elapsed = time.monotonic() - t0
            time.sleep(FLUSH)
            busy = commits(url) - before
            before = commits(url)
            time.sleep(elapsed + FLUSH)  # as long with no calls: the listeners' liveness checks (1/s each)
            idle = commits(url) - before
            report["db_commits"] = {"hot_path_run": busy, "idle_same_time": idle, "seconds": elapsed + FLUSH}
            report["predict_per_s"] = {k: 1 / t.median for k, t in calls.items()}
            report["predict_ratio_pg_over_dir"] = calls["dir"].median / calls["pg"].median
            report["generate_tokens_per_s"] = {k: tokens / t.median for k, t in streams.items()}
            report["generate_ratio_pg_over_dir"] = streams["dir"].median / streams["pg"].median

            seen = []
            for r in range(repeats):
                old = b.stubs.inference.Predict(predict_req, timeout=30)
                t0 = time.perf_counter()
                new_version(url, seed=100 + r, hidden=hidden)
                committed = time.perf_counter()
                while b.stubs.inference.Predict(predict_req, timeout=30) == old:
                    pass
                seen.append((time.perf_counter() - committed, committed - t0))
            report["saved_to_served_on_b_ms"] = {
                "median": 1000 * statistics.median(s[0] for s in seen),
                "max": 1000 * max(s[0] for s in seen),
                "commit_ms_median": 1000 * statistics.median(s[1] for s in seen),
            }

            workers = [WorkerProcess(url, "--work-dir", str(root)) for _ in range(2)]
            started.extend(workers)
            claims = []
            training = pb.TrainingSettings(max_steps=2, batch_size=2, seq_len=8)
            for i in range(5 if quick else 20):
                events = [r.event for r in a.stubs.training.Train(tpb.TrainRequest(
                    model=f"j{i}", task=pb.TASK_LANGUAGE_MODEL, training=training,
                    spec=pb.ModelSpec(cell=pb.CELL_TYPE_GRU, hidden_size=8, embedding_dim=4),
                    dataset=tpb.DatasetSource(text=LM_TEXT)), timeout=120)]
                stamps = {e.state: e.time.ToNanoseconds() / 1e9 for e in events
                          if e.kind == tpb.JOB_EVENT_KIND_STATE}
                claims.append(stamps[pb.JOB_STATE_RUNNING] - stamps[pb.JOB_STATE_QUEUED])
            report["claim_latency_ms"] = {"median": 1000 * statistics.median(claims),
                                          "max": 1000 * max(claims), "jobs": len(claims), "workers": 2}
        finally:
            for proc in started:
                with contextlib.suppress(Exception):
                    proc.kill_all() if hasattr(proc, "kill_all") else proc.kill9()
    return report


def table(r: dict) -> str:
    return "\n".join([
        f"repeats {r['repeats']}, char LSTM hidden {r['hidden']}, one client",
        f"Predict calls/s      dir {r['predict_per_s']['dir']:8.1f}   pg {r['predict_per_s']['pg']:8.1f}"
        f"   pg/dir {r['predict_ratio_pg_over_dir']:.3f}",
        f"StreamGenerate tok/s dir {r['generate_tokens_per_s']['dir']:8.1f}"
        f"   pg {r['generate_tokens_per_s']['pg']:8.1f}   pg/dir {r['generate_ratio_pg_over_dir']:.3f}",
        f"database commits over the hot-path runs ({r['db_commits']['seconds']:.1f} s window): "
        f"{r['db_commits']['hot_path_run']}; over as long with no calls: {r['db_commits']['idle_same_time']}",
        f"saved (committed) -> served by B: median {r['saved_to_served_on_b_ms']['median']:.1f} ms, "
        f"max {r['saved_to_served_on_b_ms']['max']:.1f} ms "
        f"(the commit itself: {r['saved_to_served_on_b_ms']['commit_ms_median']:.1f} ms)",
        f"job claim (QUEUED -> RUNNING), {r['claim_latency_ms']['workers']} workers, "
        f"{r['claim_latency_ms']['jobs']} jobs: median {r['claim_latency_ms']['median']:.1f} ms, "
        f"max {r['claim_latency_ms']['max']:.1f} ms",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.store", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="", help="postgresql:// URL (default: a throwaway cluster)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    cluster = None
    url = args.store
    if not url:
        from tests.pg.conftest import Cluster

        cluster = Cluster()
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        url = cluster.url("bench")
    try:
        report = run(url, repeats, args.hidden, args.quick)
    finally:
        if cluster is not None:
            cluster.remove()
    emit(report, table(report), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
