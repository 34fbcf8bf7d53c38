# The embedded TF-Serving-compatible server (python -m serving.server) as a drop-in for the
# tensorflow/serving image: same ports (8500 gRPC, 8501 REST), same MODEL_NAME and
# MODEL_BASE_PATH environment, same /models/<name>/<version> layout, and extra arguments are
# appended to the server's flags exactly as tensorflow/serving's entrypoint does. The
# Kubernetes manifests therefore differ only in the image (kubeflow/manifests/overlays/embedded).
#
# Build from the repository root:
#   docker build -f kubeflow/serving.Dockerfile -t REGISTRY/tfx-serving-kit-server:0.1.0 .
#
# Build arguments, all optional:
#   BASE_IMAGE       a Python 3.10 on Debian 12 image [python:3.10.13-slim-bookworm]; bin/docker-setup
#                    passes one made locally, where no registry is reachable.
#   EXTRA_CA_CERTS   PEM text of extra CA certificates (e.g. a corporate TLS-intercepting proxy):
#                    --build-arg EXTRA_CA_CERTS="$(cat /usr/local/share/ca-certificates/*.crt)".
#                    They are added to the image's system trust store and used by pip.
ARG BASE_IMAGE=python:3.10.13-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/tfx-serving-kit

ARG EXTRA_CA_CERTS=""
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" >/usr/local/share/ca-certificates/extra-ca-certs.crt \
      && update-ca-certificates >/dev/null; fi

# Only the server's dependencies (no TFX, no Beam), at the lock's versions; this layer is
# rebuilt only when the lock or the list change. Everything from FROM to here is the same, byte for
# byte, as in kubeflow/Dockerfile, so Docker builds this layer (TensorFlow and the rest) once and
# both images share it; keep the two in step.
COPY requirements/constraints.txt requirements/constraints.txt
COPY kubeflow/serving-requirements.txt kubeflow/serving-requirements.txt
# pip's cache is a BuildKit cache mount, never part of the image: the other image reuses the
# wheels this one downloaded (TensorFlow alone is 590 MB), and a lock change fetches only what changed.
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    export PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
 && python -m pip install "pip==24.3.1" \
 && python -m pip install -c requirements/constraints.txt -r kubeflow/serving-requirements.txt \
 && python -m pip check

ENV PYTHONPATH=/opt/tfx-serving-kit \
    MODEL_NAME=model \
    MODEL_BASE_PATH=/models

# A fixed numeric user, so Kubernetes' runAsNonRoot can check it. Mounted models must be
# readable by it: world-readable files (umask 022, as the Pusher leaves them) are; for files only
# their owner may read, run the container as that owner (docker run --user UID:GID).
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin serving \
 && mkdir -p /models

COPY serving serving
COPY kubeflow/serving_entrypoint.sh /usr/bin/tf_serving_entrypoint.sh
RUN chmod 0755 /usr/bin/tf_serving_entrypoint.sh \
 && python -c "import serving.server"

USER 10001:10001
EXPOSE 8500 8501
# /readyz answers 200 once every configured model has an AVAILABLE version (503 with the reason
# before); /healthz is process-up only. Python's urllib raises, so exits 1, on anything but 2xx.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/readyz', timeout=4)"]
ENTRYPOINT ["/usr/bin/tf_serving_entrypoint.sh"]
