# archbench images. Two targets from one file:
#   docker build --target api    -t archbench-api:latest .      # python:3.11-slim, no TensorFlow
#   docker build --target worker -t archbench-worker:latest .   # TensorFlow GPU base image
# docker-compose.yml builds both. Configuration is by ARCHBENCH_* environment variables only.
#
# The source is installed in place (pip install -e) under /app: `archbench migrate` finds
# alembic.ini and migrations/ next to the packages, as in a checkout.

# ---- api: the HTTP service, the migrate job and the sweeper (never imports TensorFlow) ----
FROM python:3.11-slim AS api
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 ARCHBENCH_DATA_DIR=/data
RUN useradd --create-home --uid 10001 archbench && mkdir -p /data && chown archbench /data
WORKDIR /app
# Dependencies first (cached while only the code changes), then the code.
COPY pyproject.toml README.md ./
RUN mkdir -p api core models worker cli archbench \
 && pip install -e . && pip uninstall -y archbench
COPY . .
RUN pip install --no-deps -e .
USER archbench
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --retries=10 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["archbench", "api", "--host", "0.0.0.0", "--port", "8000"]

# ---- worker: Keras on TensorFlow with CUDA (runs on CPU too when no GPU is given) ---------
FROM tensorflow/tensorflow:2.21.0-gpu AS worker
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 ARCHBENCH_DATA_DIR=/data \
    TF_CPP_MIN_LOG_LEVEL=2 TF_FORCE_GPU_ALLOW_GROWTH=true
RUN useradd --create-home --uid 10001 archbench && mkdir -p /data && chown archbench /data
WORKDIR /app
# The base image brings TensorFlow and CUDA; the worker extra adds the offline datasets.
COPY pyproject.toml README.md ./
RUN mkdir -p api core models worker cli archbench \
 && pip install -e '.[worker]' && pip uninstall -y archbench
COPY . .
RUN pip install --no-deps -e .
USER archbench
CMD ["archbench", "worker", "--gpus", "all"]
