# rnn-service: the gRPC server image. Build: docker build -t rnn-service .  Run: see docker-compose.yml.
# Stage 1 builds a virtual environment with the pinned runtime dependencies; stage 2 copies only that venv.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt README.md ./
COPY rnn_engine ./rnn_engine
COPY server ./server
COPY client ./client
COPY rnn ./rnn
# Runtime dependencies only, at the exact versions of constraints.txt (no test extra, no torch).
RUN /opt/venv/bin/pip install -c constraints.txt .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RNN_HOST=0.0.0.0 \
    RNN_PORT=50051 \
    RNN_MODEL_DIR=/models \
    RNN_METRICS_PORT=9464 \
    RNN_LOG_LEVEL=INFO
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin rnn \
    && mkdir -p /models && chown rnn /models
COPY --from=build /opt/venv /opt/venv
USER rnn
VOLUME ["/models"]
EXPOSE 50051 9464
# Asks the standard grpc.health.v1 service of this very process; nothing is downloaded at run time.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "server.healthcheck", "--address", "127.0.0.1:50051"]
ENTRYPOINT ["rnn-server"]
