# syntax=docker/dockerfile:1.7
# The worker image: one long-lived process per GPU running `tadm worker`. Two targets, built from the
# repository root:
#   docker build -f docker/worker.Dockerfile --target gpu -t tadm-worker:gpu .   # CUDA (default target)
#   docker build -f docker/worker.Dockerfile --target cpu -t tadm-worker:cpu .   # CPU hosts, nano model
# A venv is built in a builder stage and copied into a slim runtime: the CUDA runtime base for `gpu`, python-slim
# for `cpu`. Both images carry the shipped tadm-nano weights (16x and 32x), package data of the installed `model`
# package (pyproject.toml, [tool.setuptools.package-data]), so the default worker needs no download. Other model
# directories live on the /models volume and the Hugging Face cache (SD 2.1-base) on /cache/huggingface, both
# filled by `tadm models pull` (see deploy/README.md).

ARG TORCH_VERSION=2.13.0
# The CUDA build of torch comes from PyTorch's own index. torch 2.13.0 is built against CUDA 13.0 (its PyPI
# metadata requires cuda-toolkit 13.0.3); its wheels carry their CUDA libraries, so the runtime base only has to be
# a CUDA 13 release, and the host needs an NVIDIA driver that supports CUDA 13 (the 580 series or newer).
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu130
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:13.0.2-runtime-ubuntu24.04
ARG GPU_BUILD_IMAGE=ubuntu:24.04
ARG CPU_PYTHON_IMAGE=python:3.11-slim-bookworm

# The project's source, once, for both builders.
FROM scratch AS source
COPY pyproject.toml README.md LICENSE THIRD_PARTY_NOTICES.md /src/
COPY model /src/model
COPY service /src/service

# --- CPU -------------------------------------------------------------------------------------------------
FROM ${CPU_PYTHON_IMAGE} AS builder-cpu
ARG TORCH_VERSION
ARG TORCH_CPU_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, pinned, from the CPU index: resolving `.[worker]` alone would fetch the multi-GB CUDA build.
RUN --mount=type=cache,target=/root/.cache/pip pip install --index-url ${TORCH_CPU_INDEX} torch==${TORCH_VERSION}
COPY --from=source /src /src
RUN --mount=type=cache,target=/root/.cache/pip pip install "/src[worker,s3,official]" \
    && python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"

FROM ${CPU_PYTHON_IMAGE} AS cpu
RUN groupadd --system --gid 10001 tadm \
    && useradd --system --uid 10001 --gid tadm --create-home --home-dir /home/tadm tadm \
    && mkdir -p /models /cache/huggingface /data \
    && chown tadm:tadm /models /cache/huggingface /data
COPY --from=builder-cpu /opt/venv /opt/venv
COPY docker/worker_probe.py /opt/tadm/worker_probe.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/cache/huggingface
VOLUME ["/models", "/cache/huggingface", "/data"]
USER tadm
WORKDIR /home/tadm
# SIGTERM (docker stop, Kubernetes) makes the worker stop reading, finish its batch and exit.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python", "/opt/tadm/worker_probe.py"]
ENTRYPOINT ["tadm"]
CMD ["worker"]

# --- GPU (default target: last stage) ----------------------------------------------------------------------
FROM ${GPU_BUILD_IMAGE} AS builder-gpu
ARG TORCH_VERSION
ARG TORCH_CUDA_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
# Ubuntu's python3 here and in the CUDA runtime stage is the same build, so the venv's links stay valid.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN --mount=type=cache,target=/root/.cache/pip pip install --index-url ${TORCH_CUDA_INDEX} torch==${TORCH_VERSION}
COPY --from=source /src /src
RUN --mount=type=cache,target=/root/.cache/pip pip install "/src[worker,s3,official]" \
    && python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__; assert torch.version.cuda, 'not a CUDA build'"

FROM ${CUDA_RUNTIME_IMAGE} AS gpu
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tadm \
    && useradd --system --uid 10001 --gid tadm --create-home --home-dir /home/tadm tadm \
    && mkdir -p /models /cache/huggingface /data \
    && chown tadm:tadm /models /cache/huggingface /data
COPY --from=builder-gpu /opt/venv /opt/venv
COPY docker/worker_probe.py /opt/tadm/worker_probe.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/cache/huggingface \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
VOLUME ["/models", "/cache/huggingface", "/data"]
USER tadm
WORKDIR /home/tadm
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python", "/opt/tadm/worker_probe.py"]
ENTRYPOINT ["tadm"]
CMD ["worker"]
