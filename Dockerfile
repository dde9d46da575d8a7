# syntax=docker/dockerfile:1
#
# The mlplane services image: QueryService (`mlplane serve query`), ModelRegistry
# (`mlplane serve models`), the database migration (`mlplane db setup`) and the gateway's
# configuration render (`mlplane gateway render`, run by the chart's gateway init container and
# by deploy/images/gateway.Dockerfile). Built from the repository root:
#
#   docker build -t mlplane:0.1.0 .
#
# It runs as a non-root user (10001) and needs nothing writable but /tmp and /var/lib/mlplane
# (emptyDir volumes in the Helm chart; the upload spool is /var/lib/mlplane/spool), so it works
# with a read-only root file system.
#
# No container engine runs where this project is tested: hadolint checks this file
# (tests/deploy/test_images.py); the image itself has not been built there (deploy/README.md).
#
# Base images are pinned by version and digest (multi-architecture index digests). To move
# them: `docker buildx imagetools inspect python:3.11-slim-bookworm` (and node:20-bookworm-slim)
# and change tag and digest together.

# ---- the web app (web/dist): the gateway serves it, as `make up` does -------------------------
FROM node:20.20.2-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0 AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run build

# ---- the project and its runtime dependencies, in a virtual environment ----------------------
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY generated/ generated/
COPY services/ services/
COPY gateway/ gateway/
COPY mlplane_client/ mlplane_client/
# The project as a regular (non-editable) install, without the dev extras: the versions
# pyproject.toml pins. pip byte-compiles what it installs, which matters: the root file system
# is read-only at run time, so nothing can be compiled then.
RUN /opt/venv/bin/pip install .

# ---- the runtime image -------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS services
LABEL org.opencontainers.image.title="mlplane" \
      org.opencontainers.image.description="mlplane QueryService, ModelRegistry, migrations and gateway config render" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 mlplane \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mlplane --no-create-home \
       --shell /usr/sbin/nologin mlplane \
    && mkdir -p /var/lib/mlplane /etc/mlplane/gateway \
    && chown 10001:10001 /var/lib/mlplane /etc/mlplane/gateway
COPY --from=build /opt/venv /opt/venv
COPY --from=web /src/web/dist /opt/mlplane/web
# The descriptor set the gateway's transcoder loads (`mlplane gateway render --descriptor`):
# generated/mlplane.pb is not inside a Python package, so the install above does not carry it.
COPY generated/mlplane.pb /opt/mlplane/mlplane.pb
# Container defaults; the chart sets each of them again explicitly. The malloc settings are the
# ones `mlplane up` gives the services (services/stack/up.py: flat memory for streaming uploads).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/mlplane \
    TMPDIR=/tmp \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=4194304 \
    MLPLANE_STATE_DIR=/var/lib/mlplane \
    MLPLANE_WEB_DIR=/opt/mlplane/web \
    MLPLANE_QUERY_LISTEN=0.0.0.0:50051 \
    MLPLANE_MODELS_LISTEN=0.0.0.0:50052 \
    MLPLANE_METRICS_ADDRESS=0.0.0.0
WORKDIR /var/lib/mlplane
USER 10001:10001
EXPOSE 50051 50052 9101 9102
ENTRYPOINT ["mlplane"]
CMD ["serve", "query"]
