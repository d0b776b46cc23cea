# syntax=docker/dockerfile:1.7
# The HTTP API image: python-slim, no torch, non-root. Build from the repository root:
#   docker build -f docker/api.Dockerfile -t tadm-api .
# It runs the FastAPI app factory under uvicorn; the model library is installed only for reading thumbnails
# (model.thumbnail imports without torch), never for running a model.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# The project's source, once, for the build stage below.
FROM scratch AS source
COPY pyproject.toml README.md LICENSE THIRD_PARTY_NOTICES.md /src/
COPY model /src/model
COPY service /src/service

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY --from=source /src /src
# The api and s3 extras only: the worker extra would pull torch into this image.
RUN --mount=type=cache,target=/root/.cache/pip pip install "/src[api,s3]" \
    && ! python -c "import torch" 2>/dev/null

FROM ${PYTHON_IMAGE} AS api
RUN groupadd --system --gid 10001 tadm \
    && useradd --system --uid 10001 --gid tadm --create-home --home-dir /home/tadm tadm \
    && mkdir -p /data && chown tadm:tadm /data
COPY --from=build /opt/venv /opt/venv
COPY docker/healthcheck.py docker/s3_create_bucket.py /opt/tadm/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Local-filesystem storage lives here when the S3 backend is not used; mount a volume shared with the workers.
VOLUME ["/data"]
USER tadm
WORKDIR /home/tadm
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "/opt/tadm/healthcheck.py", "http://127.0.0.1:8000/healthz"]
# One process per container; scale with replicas. The graceful-shutdown limit closes long SSE streams on stop.
CMD ["uvicorn", "--factory", "service.api.app:create_app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--timeout-graceful-shutdown", "20"]
