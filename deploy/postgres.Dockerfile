# A STAND-IN for the official postgres:16 image, for machines that cannot reach a registry (scripts/deploy-check
# builds it and tags it postgres:16 only when `docker pull postgres:16` fails). Anywhere else use the official
# image. It is Debian's `postgresql` package (bookworm: PostgreSQL 15, not 16; the store needs no 16 feature)
# with a small entrypoint (postgres-entrypoint.sh) that does the part of the official image's the compose file
# relies on: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, initdb on first start into PGDATA
# (/var/lib/postgresql/data, the volume), listen on 0.0.0.0:5432 with scram-sha-256 passwords for TCP, and
# pg_isready on PATH. No /docker-entrypoint-initdb.d, no POSTGRES_INITDB_ARGS, no other variables.
#   docker build --network=host --build-arg BASE=python:3.11-slim -f deploy/postgres.Dockerfile -t postgres:16 deploy
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# The package's own cluster (/var/lib/postgresql/<v>/main) is dropped: PGDATA is initialised at first start.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
    && (pg_dropcluster --stop "$(ls /usr/lib/postgresql)" main 2>/dev/null || true) \
    && ln -s /usr/lib/postgresql/*/bin /usr/lib/postgresql/bin \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql \
    && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/bin:$PATH PGDATA=/var/lib/postgresql/data
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
# fast shutdown (as the official image): SIGTERM would wait for every client to disconnect
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
