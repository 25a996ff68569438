# ArchNest Containers: the web app on port 8080, its data (SQLite database, secret key,
# recordings) in the volume /data. Build with scripts/build-image, which builds the
# wheels on the host first: nothing in this file needs the network.
#
#   scripts/build-image [TAG]                     # python:3.11-slim-bookworm
#   BASE=my-registry/python:3.11 scripts/build-image   # any Debian-like base with python3
#
# The base needs python3 with the venv module (python:3.11-slim, or Debian bookworm
# with python3 and python3-venv) and groupadd/useradd.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
# Only the wheels: .dockerignore keeps the rest of the checkout out of the context.
COPY build/wheels /wheels
# --no-index: the build runs without a network, every dependency is a wheel in /wheels.
# pip itself is removed afterwards: nothing installs anything at runtime.
RUN python3 -m venv /opt/archnest \
    && /opt/archnest/bin/pip install --no-cache-dir --no-index --find-links /wheels \
        archnest-containers \
    && /opt/archnest/bin/pip uninstall --yes pip \
    && /opt/archnest/bin/python3 -c "import archnest, archnest_docker_tcp"

FROM ${BASE}
# A fixed, unprivileged uid: files on a bind-mounted /data can be chowned to it
# before the first start (chown 10001:10001 DIR).
RUN groupadd --system --gid 10001 archnest \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin archnest \
    && mkdir -m 0700 /data \
    && chown 10001:10001 /data
COPY --from=build /opt/archnest /opt/archnest

ENV PATH=/opt/archnest/bin:$PATH \
    ARCHNEST_DATA_DIR=/data \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 8080

# /healthz answers as soon as the app serves (after migrations). urllib, not curl:
# the slim base has no curl. The venv's python3 is first on PATH.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).read()"]

ENTRYPOINT ["archnest"]
# 0.0.0.0 inside the container's own network namespace; publish the port with care
# (compose.yaml binds it to the host's loopback).
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
