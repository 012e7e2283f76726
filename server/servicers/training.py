"""TrainingService: start jobs (Train), follow them (WatchJob), inspect, cancel, upload corpora."""

from __future__ import annotations

from rnn.v1 import common_pb2 as pb
from rnn.v1 import training_service_pb2 as tpb
from rnn.v1 import training_service_pb2_grpc as tpb_grpc

from .. import limits
from ..convert import JOB_STATES, event_to_pb, job_to_pb, model_config_from, task_from, train_config_from
from ..errors import handle_errors, invalid
from ..interceptor import note_model
from ..jobs import record as job_record
from ..jobs.datasets import check_dataset, dataset_bytes, dataset_options
from ..state import ServerState, check_model_name
from .paging import page

STATE_NAMES = {v: k for k, v in JOB_STATES.items()}


class TrainingServicer(tpb_grpc.TrainingServiceServicer):
    def __init__(self, state: ServerState) -> None:
        self.state = state

    @handle_errors
    def Train(self, request, context):
        record, first = self._resume(request) if request.resume_job_id else (self._submit(request), 0)
        for event in self.state.jobs.watch(record.job_id, first, context.is_active):
            yield tpb.TrainResponse(event=event_to_pb(event))

    def _submit(self, request) -> job_record.JobRecord:
        name = check_model_name(request.model)
        note_model(name)
        task = task_from(request.task)
        model_config = model_config_from(task, request.spec)
        train_config = train_config_from(request.training)
        limits.check_training(model_config, train_config, self.state.config)
        data, suffix = dataset_bytes(request.dataset, task, self.state.uploads, self.state.config)
        options = dataset_options(request.dataset.options)
        check_dataset(self.state.jobs.staging, (model_config, train_config), data, suffix, options)
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

    def _resume(self, request) -> tuple[job_record.JobRecord, int]:
        """Restart the job; returns it and the sequence of its first new event."""
        self._check_job_id(request.resume_job_id, "resume_job_id")
        for field in ("spec", "training", "dataset"):
            if request.HasField(field):
                raise invalid(field, "leave it empty when resuming: the job's own settings are used")
        first = self.state.jobs.get(request.resume_job_id).event_count
        return self.state.jobs.resume(request.resume_job_id), first

    @staticmethod
    def _check_job_id(job_id: str, field: str = "job_id") -> str:
        if not job_record.JOB_ID.fullmatch(job_id):
            raise invalid(field, f"expected a job id like 'job-0123456789ab', got {job_id!r}")
        return job_id

    def _job(self, job_id: str) -> tpb.Job:
        record = self.state.jobs.get(self._check_job_id(job_id))
        return job_to_pb(record, resumable=record.state in job_record.RESUMABLE)

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
            jobs=[job_to_pb(r, r.state in job_record.RESUMABLE) for r in chosen], next_page_token=token
        )

    @handle_errors
    def CancelJob(self, request, context):
        self.state.jobs.cancel(self._check_job_id(request.job_id))
        return tpb.CancelJobResponse(job=self._job(request.job_id))

    @handle_errors
    def UploadDataset(self, request_iterator, context):
        dataset_id, size, sha = self.state.uploads.receive(request_iterator, context.is_active)
        return tpb.UploadDatasetResponse(dataset_id=dataset_id, size_bytes=size, sha256=sha)
