# zdsync: one long-running process per container.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml setup.cfg README.md ./
COPY zdsync ./zdsync
RUN pip install . && useradd --system --uid 10001 --no-create-home zdsync

USER 10001
EXPOSE 8080
# Health, readiness and metrics: GET /livez, /readyz, /healthz, /metrics on http.port.
ENTRYPOINT ["zdsync"]
CMD ["run"]
