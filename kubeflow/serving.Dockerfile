# The embedded TF-Serving-compatible server (python -m serving.server) as a drop-in for the
# tensorflow/serving image: same ports (8500 gRPC, 8501 REST), same MODEL_NAME and
# MODEL_BASE_PATH environment, same /models/<name>/<version> layout, and extra arguments are
# appended to the server's flags exactly as tensorflow/serving's entrypoint does. The
# Kubernetes manifests therefore differ only in the image (kubeflow/manifests/overlays/embedded).
#
# Build from the repository root:
#   docker build -f kubeflow/serving.Dockerfile -t REGISTRY/tfx-serving-kit-server:0.1.0 .

FROM python:3.10.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONPATH=/opt/tfx-serving-kit \
    MODEL_NAME=model \
    MODEL_BASE_PATH=/models

WORKDIR /opt/tfx-serving-kit

# Only the server's dependencies (no TFX, no Beam), at the lock's versions.
COPY requirements/constraints.txt requirements/constraints.txt
COPY kubeflow/serving-requirements.txt kubeflow/serving-requirements.txt
RUN python -m pip install "pip==24.3.1" \
 && python -m pip install -c requirements/constraints.txt -r kubeflow/serving-requirements.txt \
 && python -m pip check

COPY serving serving
COPY kubeflow/serving_entrypoint.sh /usr/bin/tf_serving_entrypoint.sh
RUN chmod 0755 /usr/bin/tf_serving_entrypoint.sh \
 && python -c "import serving.server" \
 && mkdir -p /models

EXPOSE 8500 8501
# The process answers on REST (the entrypoint's --rest_api_port=8501); readiness is /readyz.
HEALTHCHECK --interval=20s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/healthz', timeout=4)"]
ENTRYPOINT ["/usr/bin/tf_serving_entrypoint.sh"]
