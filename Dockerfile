# syntax=docker/dockerfile:1
# Production image: `helpdesk serve` by default; `helpdesk worker` and
# `helpdesk migrate` from the same image. PostgreSQL and Redis are external
# (HELPDESK_DATABASE_URL, HELPDESK_REDIS_URL); the embedded servers are not installed.
# Everything the service reads at run time (default settings, classification rules,
# migrations, console files) is package data inside the wheel: the runtime stage needs
# nothing from the source tree. Site settings: HELPDESK_* variables, or a mounted file
# named by HELPDESK_CONFIG_FILE (config/helpdesk.example.toml documents each setting).
# tests/test_install_wheel.py installs the same wheel into a fresh virtualenv and takes a
# mail from intake to a routed ticket; it is what proves this install where Docker is absent.

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
    HELPDESK_HOST=0.0.0.0 \
    HELPDESK_PORT=8000 \
    HELPDESK_DEMO=0
RUN groupadd --system helpdesk \
 && useradd --system --gid helpdesk --home-dir /app --shell /usr/sbin/nologin helpdesk
WORKDIR /app
COPY --from=build /opt/helpdesk /opt/helpdesk
USER helpdesk
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HELPDESK_PORT', '8000'), timeout=2)"
CMD ["helpdesk", "serve"]
