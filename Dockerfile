# syntax=docker/dockerfile:1
# elastic-connector container: slim Python, wheels built in a throw-away stage, non-root runtime.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# The build stage compiles the core with mypyc (setup.py): a C compiler and the C library's
# headers (Python's own are in the image, under /usr/local/include). `compiled` makes the build
# fail rather than ship the pure modules. The compiler stays in this stage.
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV ELASTIC_CONNECTOR_BUILD=compiled
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="elastic-connector" \
      org.opencontainers.image.description="OpenCTI -> Elastic threat-intel connector" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 connector \
 && useradd --system --uid 10001 --gid connector --home-dir /app --shell /usr/sbin/nologin connector
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-compile /wheels/*.whl && rm -rf /wheels
WORKDIR /app
USER 10001:10001
# Configuration: mount a file at /app/config.yml (read when present; `-c PATH` for another path),
# and/or set environment variables, and/or CONNECTOR_JSON_CONFIG (see docs/config-table.md).
# Health: with connector.metrics_port set, `status` asks /healthz (0 healthy, 1 unhealthy or no
# answer; no curl needed); without a port there is nothing to ask and it exits 0. The start period
# covers index setup and registration; a first sync that replays for hours stays healthy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD ["elastic-connector", "status", "--healthcheck", "--timeout", "5"]
ENTRYPOINT ["elastic-connector"]
CMD ["run"]
