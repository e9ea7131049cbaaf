# zdsync: one long-running process per container.
#   docker build -t zdsync .
#   docker run --rm -p 8080:8080 -p 8081:8081 --env-file zdsync.env zdsync          # zdsync run
# Two stages: the build stage installs zdsync into a virtual environment; the final stage
# gets that environment and tini, and nothing that builds or installs packages.
#
# The base image is pinned to a patch release of Python on Debian bookworm (tini below is
# bookworm's package). For reproducible builds, pin its digest too in your build pipeline:
#   FROM python:3.11.13-slim-bookworm@sha256:…
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# tini, a minimal init: as PID 1 it forwards SIGTERM to zdsync (which then finishes the
# ticket in hand and releases the lease) and reaps zombies. The static build needs no libc
# from this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY zdsync ./zdsync
# pip and setuptools are needed to install, not to run: they stay behind in this stage.
RUN python -m venv /opt/zdsync \
    && /opt/zdsync/bin/pip install . \
    && /opt/zdsync/bin/pip uninstall -y pip setuptools

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/zdsync/bin:$PATH
COPY --from=build /usr/bin/tini-static /usr/bin/tini
COPY --from=build /opt/zdsync /opt/zdsync
RUN groupadd --system --gid 10001 zdsync \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin zdsync
USER 10001:10001
WORKDIR /tmp
# 8080: [http] port (the webhook; probes and metrics too). 8081: [http] probe_port (probes
# and metrics only; what Kubernetes probes and Prometheus use).
EXPOSE 8080 8081
# For docker and compose (Kubernetes uses its own probes): /livez has no dependencies, so
# a Redis outage never marks the container unhealthy. Python, as the image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/livez' % os.environ.get('HTTP_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
ENTRYPOINT ["tini", "--", "zdsync"]
CMD ["run"]
