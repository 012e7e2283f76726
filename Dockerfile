# rnn-service: the gRPC server image (server dependencies only; plotting is the client's `plot` extra).
#   Build (BuildKit, the default of Docker 23+; on Debian's docker.io 20.10 set DOCKER_BUILDKIT=1):
#     docker build -t rnn-service .
#   Behind a TLS-re-signing proxy give pip the proxy's CA as a build secret (mounted for one RUN, never stored
#   in a layer or in the image's history), and where the build has no network of its own use the host's:
#     docker build --network=host --secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt -t rnn-service .
#   Run (the server refuses 0.0.0.0 without TLS and tokens unless told the network is private):
#     docker run -d --name rnn -p 127.0.0.1:50051:50051 -e RNN_ALLOW_INSECURE=1 -v rnn-models:/models rnn-service
#   More in README "Docker"; scripts/deploy-check builds and runs all of this.
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
# Runtime dependencies only, at the exact versions of constraints.txt (no test or plot extra, no torch).
# The optional secret `pip_ca` is a CA bundle for pip (PIP_CERT) during this step only.
RUN --mount=type=secret,id=pip_ca,required=false \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && /opt/venv/bin/pip install -c constraints.txt .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/home/rnn \
    RNN_HOST=0.0.0.0 \
    RNN_PORT=50051 \
    RNN_MODEL_DIR=/models \
    RNN_METRICS_PORT=9464 \
    RNN_LOG_LEVEL=INFO
RUN useradd --system --uid 10001 --create-home --home-dir /home/rnn --shell /usr/sbin/nologin rnn \
    && mkdir -p /models && chown rnn /models
COPY --from=build /opt/venv /opt/venv
USER rnn
WORKDIR /home/rnn
VOLUME ["/models"]
EXPOSE 50051 9464
# Asks the standard grpc.health.v1 service of this very process on 127.0.0.1:$RNN_PORT (server.healthcheck
# reads RNN_PORT, so `-e RNN_PORT=6000` is probed on 6000); nothing is downloaded at run time. A container
# that runs something else (the compose demo) turns it off with `healthcheck: {disable: true}`.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "server.healthcheck"]
ENTRYPOINT ["rnn-server"]
