# syntax=docker/dockerfile:1
#
# oauth2-gateway container image.
#
#   docker build -t oauth2-gateway .
#   docker run --rm -p 8080:8080 -p 127.0.0.1:9090:9090 \
#     -v "$PWD/deploy/compose:/etc/oauth2-gateway:ro" -e ADMIN_TOKEN oauth2-gateway
#
# Stage 1 builds the project wheel and wheels for all of its dependencies.
# Stage 2 installs those wheels offline (--no-index) into a clean slim image,
# so the runtime image holds no build tools, no source tree and no pip cache.
# Both stages use the same base so binary wheels built/fetched in stage 1 match
# the interpreter and libc of stage 2.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

############################################################ build stage
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# The build context is filtered by .dockerignore (no .git, venvs, tests, caches, secrets).
COPY . .

# `pip wheel .` builds the gateway wheel and collects wheels for every dependency
# into /wheels. If a dependency ever lacks a binary wheel for this platform, add
# `apt-get install -y --no-install-recommends build-essential` here - never in the
# runtime stage.
RUN python -m pip wheel --wheel-dir /wheels .

############################################################ runtime stage
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="oauth2-gateway" \
      org.opencontainers.image.description="OAuth2 API gateway (aiohttp reverse proxy validating bearer tokens)"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

# Fixed numeric UID/GID so Kubernetes `runAsNonRoot` can verify it and so volume
# ownership (fsGroup, named volumes) is predictable.
ARG UID=10001
ARG GID=10001
# /etc/oauth2-gateway: config (+ keys), mounted read-only at run time.
# /var/lib/oauth2-gateway: the only state a dev setup writes (dev_signing_key);
# owned by the runtime user so a fresh named volume mounted here is writable.
RUN groupadd --system --gid "${GID}" gateway \
 && useradd --system --uid "${UID}" --gid gateway --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin gateway \
 && install -d -m 0755 -o root -g root /etc/oauth2-gateway \
 && install -d -m 0750 -o gateway -g gateway /var/lib/oauth2-gateway

# Install from the wheels of the build stage only (bind-mounted: they never become
# a layer of this image). pip byte-compiles at install time, which matters because
# the root filesystem is read-only in Kubernetes.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links=/wheels /wheels/*.whl \
 && /opt/venv/bin/oauth2-gateway --help > /dev/null

USER ${UID}:${GID}
# The CLI's default config is ./gateway.yaml: from here, `oauth2-gateway check|routes|
# token|revoke` inside the container use the mounted config without -c.
WORKDIR /etc/oauth2-gateway

# 8080: public listener (server.listen). 9090: admin listener (admin.listen):
# /metrics, /healthz, /readyz and the token-protected /admin/* API. Never publish
# 9090 to the internet.
EXPOSE 8080 9090

# Liveness only (readiness is /readyz, used by orchestrators that support it).
# Uses the stdlib so the image needs no curl/wget. Override the URL with
# GATEWAY_HEALTHCHECK_URL if admin.listen uses another port.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; url = os.environ.get('GATEWAY_HEALTHCHECK_URL', 'http://127.0.0.1:9090/healthz'); sys.exit(0 if urllib.request.urlopen(url, timeout=2).status == 200 else 1)"]

# The gateway is PID 1 and handles SIGTERM itself (graceful shutdown). Use
# `docker run --init` if you want an init process to reap zombies.
ENTRYPOINT ["oauth2-gateway"]
CMD ["run", "-c", "/etc/oauth2-gateway/gateway.yaml"]
