# archbench images. Two targets from one file:
#   docker build --target api    -t archbench-api:latest .      # python:3.11-slim, no TensorFlow
#   docker build --target worker -t archbench-worker:latest .   # TensorFlow GPU base image
# docker-compose.yml builds both. Configuration is by ARCHBENCH_* environment variables only.
#
# archbench is installed as a regular package and its source removed: the migrations are a
# package of the distribution (top-level migrations/), so `archbench migrate` needs no
# checkout (tests/integration/test_wheel.py runs a wheel the same way, from elsewhere).

# ---- api: the HTTP service, the migrate job and the sweeper (never imports TensorFlow) ----
FROM python:3.11-slim AS api
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 ARCHBENCH_DATA_DIR=/data
RUN useradd --create-home --uid 10001 archbench && mkdir -p /data && chown archbench /data
# Dependencies first (cached while only the code changes), then the code.
COPY pyproject.toml README.md /src/
RUN mkdir -p /src/api /src/core /src/models /src/worker /src/cli /src/archbench /src/migrations \
 && pip install /src && pip uninstall -y archbench
COPY . /src
RUN pip install --no-deps /src && rm -rf /src
WORKDIR /data
USER archbench
EXPOSE 8000
# The api's check. The migrate job and the sweeper run this image too: docker-compose.yml gives
# each its own (none for the one-shot migrate, the sweeper's liveness file for the sweeper).
HEALTHCHECK --interval=10s --timeout=5s --retries=10 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["archbench", "api", "--host", "0.0.0.0", "--port", "8000"]

# ---- worker: Keras on TensorFlow with CUDA (runs on CPU too when no GPU is given) ---------
FROM tensorflow/tensorflow:2.21.0-gpu AS worker
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 ARCHBENCH_DATA_DIR=/data \
    TF_CPP_MIN_LOG_LEVEL=2 TF_FORCE_GPU_ALLOW_GROWTH=true
RUN useradd --create-home --uid 10001 archbench && mkdir -p /data && chown archbench /data
# The base image brings TensorFlow and CUDA; the worker extra adds the offline datasets.
COPY pyproject.toml README.md /src/
RUN mkdir -p /src/api /src/core /src/models /src/worker /src/cli /src/archbench /src/migrations \
 && pip install '/src[worker]' && pip uninstall -y archbench
COPY . /src
RUN pip install --no-deps /src && rm -rf /src
WORKDIR /data
USER archbench
CMD ["archbench", "worker", "--gpus", "all"]
