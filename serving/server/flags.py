"""The flags of `python -m serving.server`: tensorflow_model_server's names, meanings and defaults.

Flags accept `--flag=value` and `--flag value`; booleans also as bare `--flag`. Real TF Serving
flags with no meaning here are accepted and logged as no-ops; unknown flags are an error.
Two defaults differ from tensorflow_model_server's, so that the server is fast with no flags
(TF_SERVING_DEFAULTS restores the binary's): batching is on, forming batches only from requests
already queued (no added wait), and one server process runs per usable core (at most 4).
"""

from __future__ import annotations

import argparse

from serving.server.cpus import MAX_DEFAULT_PROCESSES, default_process_count, usable_cpus

# Real tensorflow_model_server flags (model_servers/main.cc) with no effect here.
NO_OP_FLAGS = (
    "grpc_socket_path",
    "rest_api_num_threads",
    "enable_per_model_batching_parameters",
    "max_num_load_retries",
    "load_retry_interval_micros",
    "flush_filesystem_caches",
    "tensorflow_session_parallelism",
    "use_alts_credentials",
    "platform_config_file",
    "per_process_gpu_memory_fraction",
    "remove_unused_fields_from_bundle_metagraph",
    "prefer_tflite_model",
    "num_tflite_pools",
    "num_tflite_interpreters_per_pool",
    "enable_signature_method_name_check",
    "xla_cpu_compilation_enabled",
    "enable_profiler",
    "thread_pool_factory_config_file",
    "mixed_precision",
    "skip_initialize_tpu",
    "grpc_max_threads",
    "enable_session_metadata",
    "tensorflow_session_config_file",
    "use_tflite_model",
    "saved_model_tags_for_warmup",
)


# The flags that give tensorflow_model_server's behaviour where this server's defaults differ.
TF_SERVING_DEFAULTS = ("--enable_batching=false", "--num_server_processes=1")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "t", "yes", "y"):
        return True
    if lowered in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.server",
        description="TF Serving compatible model server (REST + gRPC).",
        allow_abbrev=False,
    )
    add = parser.add_argument

    def flag(name: str, default: bool, help_text: str) -> None:
        add(f"--{name}", type=_bool, nargs="?", const=True, default=default, help=help_text)

    add("--port", type=int, default=8500, help="gRPC port (0: any free port)")
    add("--rest_api_port", type=int, default=0, help="REST port; 0 disables REST (TF Serving default)")
    add("--host", default="127.0.0.1", help="address to bind both ports to (TF Serving: all)")
    add("--rest_api_timeout_in_ms", type=int, default=30000, help="REST request timeout -> 504")
    add("--model_name", default="default", help="model name with --model_base_path")
    add("--model_base_path", default="", help="directory holding integer version subdirectories")
    add("--model_config_file", default="", help="text ModelServerConfig; overrides name/base path")
    add("--model_config_file_poll_wait_seconds", type=int, default=0, help="re-read the config file")
    add("--file_system_poll_wait_seconds", type=int, default=1, help="base path poll interval")
    flag(
        "enable_batching",
        True,
        "merge concurrent requests to one signature into one call. Default on (TF Serving: off; "
        "--enable_batching=false restores that). Without --batching_parameters_file a batch is what "
        "is already queued when a batch thread is free (batch_timeout_micros 0: no added wait), up to "
        "1000 rows; rows of a batched signature must not depend on each other",
    )
    add("--batching_parameters_file", default="", help="text BatchingParameters")
    add("--monitoring_config_file", default="", help="text MonitoringConfig (Prometheus)")
    add("--ssl_config_file", default="", help="text SSLConfig: TLS for gRPC and REST, mutual TLS with client_verify")
    flag("enable_grpc_healthcheck_service", False, "serve grpc.health.v1.Health (SERVING once every model is AVAILABLE)")
    add("--auth_token_file", default="", help="file holding a bearer token both APIs require (not a TF Serving flag)")
    flag(
        "enable_raw_image_api", False,
        "POST /v1/models/<m>[/versions/<v>|/labels/<l>]:classify_image with a PNG/JPEG file as the body "
        "answers the top classes (?top_k=5); not a TF Serving API",
    )
    flag("enable_model_warmup", True, "replay assets.extra/tf_serving_warmup_requests")
    add("--num_request_iterations_for_warmup", type=int, default=1,
        help="times each warmup record is replayed before a version is AVAILABLE")
    flag("allow_version_labels", True, "allow version_labels in the model config")
    flag("allow_version_labels_for_unavailable_models", False, "labels may point at new versions")
    add("--tensorflow_intra_op_parallelism", type=int, default=0, help="TF intra-op threads (0: TF's choice)")
    add("--tensorflow_inter_op_parallelism", type=int, default=0, help="TF inter-op threads (0: TF's choice)")
    add("--saved_model_tags", default="serve", help="comma separated MetaGraph tags")
    add("--grpc_channel_arguments", default="", help="comma separated key=value gRPC options")
    flag("rest_api_enable_cors_support", False, "CORS headers on REST responses")
    flag("version", False, "print the version and exit")
    add("--grpc_max_message_bytes", type=int, default=2**31 - 1, help="largest gRPC message")
    add("--rest_api_max_body_bytes", type=int, default=256 * 1024 * 1024, help="largest REST body")
    add(
        "--rest_api_workers",
        type=int,
        default=max(4, 2 * usable_cpus()),
        help="threads running REST signature calls (JSON work stays on the event loop)",
    )
    add("--grpc_workers", type=int, default=32, help="threads for the gRPC calls that leave the event loop")
    flag("pick_unused_ports", False, "bind both ports to free ports chosen by the OS")
    add(
        "--num_server_processes",
        type=int,
        default=0,
        help="serve from N processes sharing both ports (SO_REUSEPORT), each a complete server; "
        "the first one supervises (not a TF Serving flag). Default 0: one per usable core "
        f"(affinity and cgroup CPU quota), at most {MAX_DEFAULT_PROCESSES}; "
        "1 gives TF Serving's single process",
    )
    add("--server_process_index", type=int, default=-1, help=argparse.SUPPRESS)
    add("--ready_file", default="", help="write the bound ports here as JSON when ready")
    add("--log_level", default="INFO", help="Python logging level")
    for name in NO_OP_FLAGS:
        add(f"--{name}", nargs="?", const="true", default=None, help=argparse.SUPPRESS)
    return parser


def server_processes(args: argparse.Namespace) -> int:
    """--num_server_processes with its default (0) resolved: one per usable core, at most
    MAX_DEFAULT_PROCESSES."""
    return args.num_server_processes or default_process_count(usable_cpus())


def rest_enabled(args: argparse.Namespace) -> bool:
    """REST is on with a REST port, or when the OS picks the ports (--pick_unused_ports)."""
    return args.pick_unused_ports or args.rest_api_port > 0


def channel_arguments(text: str) -> tuple[tuple[str, object], ...]:
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        pairs.append((key, int(value) if value.lstrip("-").isdigit() else value))
    return tuple(pairs)
