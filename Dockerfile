# syntax=docker/dockerfile:1.7
#
# The danmaku classification service image. Two variants from one file:
#
#   docker build -t danmaku-classifier:gpu .                      # default: CUDA runtime + onnxruntime-gpu
#   docker build -t danmaku-classifier:cpu --build-arg VARIANT=cpu .   # python:3.11-slim + onnxruntime
#
# Models are mounted at /models at run time (default), or baked in at build time:
#   --build-arg MODELS_DIR=bake/models          bundles staged under bake/ (the only model files .dockerignore admits)
#   --build-context models=/path/to/models      any folder, replaces the `models` stage below
# See docs/deployment.md for what was and was not exercised.

# gpu | cpu: picks the runtime base and the extra of pyproject.toml (`.[gpu]` or `.[cpu]`). No torch in either.
ARG VARIANT=gpu
# onnxruntime-gpu on PyPI (1.31.x) is built against CUDA 13 and cuDNN 9; the build fails (verify_image.py) when
# the installed onnxruntime-gpu wants another CUDA major than this base ships. CUDA 13 needs an NVIDIA driver >= 580.
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Empty placeholder by default: nothing is baked, the image expects bundles mounted at /models.
ARG MODELS_DIR=deploy/docker/no-models

# ---------------------------------------------------------------- runtime bases (one per variant)
FROM ${PYTHON_IMAGE} AS base-cpu

FROM ${CUDA_IMAGE} AS base-gpu
# The CUDA image has no Python: take the distribution's (Ubuntu 24.04: 3.12). Builder and runtime share this
# stage, so the venv copied below runs on exactly the interpreter it was built with. Not version-pinned: the
# release fixes the Python minor and the archive only ships security fixes for it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# hadolint ignore=DL3006
FROM base-${VARIANT} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH}

# ---------------------------------------------------------------- builder: wheel + venv
FROM base AS builder
ARG VARIANT
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY training ./training
# The same extras CI installs from pyproject.toml (CI: `.[cpu,train,dev]`; here only the serving extra),
# so the image cannot drift from what the tests ran. tests/deploy/test_dockerfile.py checks this.
# The venv's python is named in full: the shell hashed `python3` to the system one on its first lookup, before
# the venv existed, and a bare `python3 -m pip` would install into the system interpreter.
RUN python3 -m venv "${VIRTUAL_ENV}" \
    && "${VIRTUAL_ENV}/bin/python" -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && "${VIRTUAL_ENV}/bin/python" -m pip install --no-cache-dir "$(echo /wheels/danmaku_classifier-*.whl)[${VARIANT}]"
COPY deploy/docker/verify_image.py /usr/local/share/danmaku/verify_image.py
# Fails the build on: torch/transformers in the image, the wrong onnxruntime build for the variant, an
# onnxruntime-gpu whose CUDA major differs from the base image's, or a missing `danmaku-serve` entry point.
RUN "${VIRTUAL_ENV}/bin/python" /usr/local/share/danmaku/verify_image.py --variant "${VARIANT}"

# ---------------------------------------------------------------- models to bake (empty unless asked)
FROM scratch AS models
ARG MODELS_DIR
COPY ${MODELS_DIR}/ /

# ---------------------------------------------------------------- runtime
FROM base AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="danmaku-classifier" \
      org.opencontainers.image.description="Danmaku classification service (ONNX Runtime, ${VARIANT})" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid/gid so Kubernetes can check runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 danmaku \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin danmaku
COPY --from=builder /opt/venv /opt/venv
COPY deploy/docker/healthcheck.py /usr/local/share/danmaku/healthcheck.py
# Bundles are read-only data: owned by root, readable by the service user.
COPY --from=models / /models/
# Read-only root filesystem: the only writable path is /tmp (a tmpfs/emptyDir at run time), HOME points there.
ENV HOME=/tmp \
    TMPDIR=/tmp
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "/usr/local/share/danmaku/healthcheck.py"]
# Exec form: danmaku-serve is PID 1 and receives SIGTERM itself, so it can drain admitted requests.
ENTRYPOINT ["danmaku-serve"]
CMD ["--host", "0.0.0.0", "--port", "8000", "--models-dir", "/models"]
