"""TrainingService: start jobs (Train), follow them (WatchJob), inspect, cancel, upload corpora."""

from __future__ import annotations

from rnn.v1 import common_pb2 as pb
from rnn.v1 import training_service_pb2 as tpb
from rnn.v1 import training_service_pb2_grpc as tpb_grpc

from .. import jobrecord as jr
from .. import limits
from ..convert import (
    JOB_STATES,
    event_to_pb,
    job_to_pb,
    model_config_from,
    struct_dict,
    task_from,
    train_config_from,
)
from ..errors import handle_errors, invalid, with_field_prefix
from ..interceptor import note_model
from ..state import ServerState, check_model_name
from .paging import page

SUFFIXES = {
    tpb.DATASET_FORMAT_TEXT: ".txt",
    tpb.DATASET_FORMAT_TSV: ".tsv",
    tpb.DATASET_FORMAT_CSV: ".csv",
    tpb.DATASET_FORMAT_JSONL: ".jsonl",
}
TASK_SUFFIX = {"language_model": ".txt", "forecasting": ".csv", "tagging": ".jsonl"}
DATASET_OPTIONS = ("column", "exog_columns", "fmt", "header")
CHECK_INLINE_BYTES = 4 << 20  # datasets up to this size are read once before the job starts
STATE_NAMES = {v: k for k, v in JOB_STATES.items()}


class TrainingServicer(tpb_grpc.TrainingServiceServicer):
    def __init__(self, state: ServerState) -> None:
        self.state = state

    @handle_errors
    def Train(self, request, context):
        record, first = self._resume(request) if request.resume_job_id else (self._submit(request), 0)
        for event in self.state.jobs.watch(record.job_id, first, context.is_active):
            yield tpb.TrainResponse(event=event_to_pb(event))

    def _submit(self, request) -> jr.JobRecord:
        name = check_model_name(request.model)
        note_model(name)
        task = task_from(request.task)
        model_config = model_config_from(task, request.spec)
        train_config = train_config_from(request.training)
        limits.check_training(model_config, train_config, self.state.config)
        data, suffix = self._dataset(request.dataset, task)
        options = dataset_options(request.dataset.options)
        if len(data) <= CHECK_INLINE_BYTES:
            check_dataset(self.state.jobs.root, (model_config, train_config), data, suffix, options)
        return self.state.jobs.submit(
            model=name,
            task=task,
            model_config=model_config,
            train_config=train_config,
            data=data,
            data_suffix=suffix,
            dataset_options=options,
            overwrite=request.overwrite,
            model_exists=self.state.store.exists(name),
        )

    def _resume(self, request) -> tuple[jr.JobRecord, int]:
        """Restart the job; returns it and the sequence of its first new event."""
        self._check_job_id(request.resume_job_id, "resume_job_id")
        for field in ("spec", "training", "dataset"):
            if request.HasField(field):
                raise invalid(field, "leave it empty when resuming: the job's own settings are used")
        first = self.state.jobs.get(request.resume_job_id).event_count
        return self.state.jobs.resume(request.resume_job_id), first

    def _dataset(self, source: tpb.DatasetSource, task: str) -> tuple[bytes, str]:
        kind = source.WhichOneof("source")
        fmt = source.format
        if fmt not in tpb.DatasetFormat.values():
            raise invalid("dataset.format", f"expected a DatasetFormat, got {fmt}")
        if kind is None:
            raise invalid("dataset", "expected one of text, content or dataset_id")
        if kind == "dataset_id":
            data, upload_fmt = self.state.uploads.read(source.dataset_id)
            fmt = fmt or upload_fmt
        else:
            data = source.text.encode("utf-8") if kind == "text" else source.content
            limits.check_dataset_size(f"dataset.{kind}", len(data), self.state.config)
        if not data.strip():
            raise invalid(f"dataset.{kind}", "expected a non-empty dataset")
        return data, SUFFIXES.get(fmt) or TASK_SUFFIX.get(task, ".tsv")

    @staticmethod
    def _check_job_id(job_id: str, field: str = "job_id") -> str:
        if not jr.JOB_ID.fullmatch(job_id):
            raise invalid(field, f"expected a job id like 'job-0123456789ab', got {job_id!r}")
        return job_id

    def _job(self, job_id: str) -> tpb.Job:
        record = self.state.jobs.get(self._check_job_id(job_id))
        return job_to_pb(record, resumable=record.state in jr.RESUMABLE)

    @handle_errors
    def WatchJob(self, request, context):
        self._check_job_id(request.job_id)
        if request.from_sequence < 0:
            raise invalid("from_sequence", f"expected a number >= 0, got {request.from_sequence}")
        for event in self.state.jobs.watch(request.job_id, request.from_sequence, context.is_active):
            yield tpb.WatchJobResponse(event=event_to_pb(event))

    @handle_errors
    def GetJob(self, request, context):
        return tpb.GetJobResponse(job=self._job(request.job_id))

    @handle_errors
    def ListJobs(self, request, context):
        if request.state not in STATE_NAMES and request.state != pb.JOB_STATE_UNSPECIFIED:
            raise invalid("state", f"expected a JobState, got {request.state}")
        if request.model:
            check_model_name(request.model)
        records = self.state.jobs.list(STATE_NAMES.get(request.state), request.model or None)
        chosen, token = page(records, request.page_size, request.page_token)
        return tpb.ListJobsResponse(
            jobs=[job_to_pb(r, r.state in jr.RESUMABLE) for r in chosen], next_page_token=token
        )

    @handle_errors
    def CancelJob(self, request, context):
        self.state.jobs.cancel(self._check_job_id(request.job_id))
        return tpb.CancelJobResponse(job=self._job(request.job_id))

    @handle_errors
    def UploadDataset(self, request_iterator, context):
        dataset_id, size, sha = self.state.uploads.receive(request_iterator)
        return tpb.UploadDatasetResponse(dataset_id=dataset_id, size_bytes=size, sha256=sha)


def dataset_options(options) -> dict:
    """DatasetSource.options as load_dataset keywords (only the documented, path-free ones)."""
    values = struct_dict(options)
    for key in values:
        if key not in DATASET_OPTIONS:
            raise invalid(f"dataset.options.{key}", f"expected one of {list(DATASET_OPTIONS)}")
    return values


def check_dataset(staging_root, configs: tuple[dict, dict], data: bytes, suffix: str, options: dict) -> None:
    """Read and prepare the dataset as the worker will, so a bad one fails Train with INVALID_ARGUMENT."""
    import tempfile

    from rnn_engine.config import ModelConfig, TrainConfig
    from rnn_engine.errors import InvalidInput
    from rnn_engine.tasks import load_dataset, prepare

    model_config, train_config = ModelConfig.from_dict(configs[0]), TrainConfig.from_dict(configs[1])

    with tempfile.TemporaryDirectory(dir=staging_root, prefix=".check-") as tmp:
        path = f"{tmp}/dataset{suffix}"
        with open(path, "wb") as f:
            f.write(data)
        try:
            prepare(model_config, train_config, load_dataset(model_config.task, path, **options))
        except InvalidInput as exc:
            message = str(exc).replace(path, "dataset")
            option = message.split(":", 1)[0]
            if option in DATASET_OPTIONS:
                raise with_field_prefix(InvalidInput(message), "dataset.options") from None
            raise invalid("dataset", message.removeprefix("dataset: ")) from None
        except UnicodeDecodeError as exc:
            raise invalid("dataset", f"expected UTF-8 text: {exc.reason} at byte {exc.start}") from None
