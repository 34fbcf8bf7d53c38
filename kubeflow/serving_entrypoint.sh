#!/bin/sh
# Entrypoint of the embedded server image, with the contract of tensorflow/serving's
# /usr/bin/tf_serving_entrypoint.sh: serve MODEL_BASE_PATH/MODEL_NAME on 8500 (gRPC) and 8501
# (REST), and append the container's arguments (e.g. --model_config_file=...), which override.
# The embedded server binds loopback by default; in a container it must listen on all
# interfaces, like the real binary. One server process, as tensorflow/serving runs, not the
# embedded server's default of one per usable core: in Kubernetes scale with replicas, and the
# Deployment's Prometheus scrape (one process's metrics) and 2 GiB memory limit (one copy of the
# models) assume one; a container argument --num_server_processes=0 asks for one per core.
set -e
exec python -m serving.server \
  --port=8500 \
  --rest_api_port=8501 \
  --model_name="${MODEL_NAME:-model}" \
  --model_base_path="${MODEL_BASE_PATH:-/models}/${MODEL_NAME:-model}" \
  --host=0.0.0.0 \
  --num_server_processes=1 \
  "$@"
