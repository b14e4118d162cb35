# syntax=docker/dockerfile:1
# Production image: `helpdesk serve` by default; `helpdesk worker` and
# `helpdesk migrate` from the same image. PostgreSQL and Redis are external
# (HELPDESK_DATABASE_URL, HELPDESK_REDIS_URL); the embedded servers are not installed.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY helpdesk ./helpdesk
COPY workers ./workers
RUN python -m venv /opt/helpdesk \
 && /opt/helpdesk/bin/pip install --upgrade pip \
 && /opt/helpdesk/bin/pip install .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/helpdesk/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HELPDESK_CONFIG_DIR=/app/config \
    HELPDESK_HOST=0.0.0.0 \
    HELPDESK_PORT=8000 \
    HELPDESK_DEMO=0
RUN groupadd --system helpdesk \
 && useradd --system --gid helpdesk --home-dir /app --shell /usr/sbin/nologin helpdesk
WORKDIR /app
COPY --from=build /opt/helpdesk /opt/helpdesk
COPY config ./config
USER helpdesk
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["helpdesk", "serve"]
