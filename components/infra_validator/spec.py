"""Keys shared by the InfraValidator component, its executor and the run summary.

The blessing artifact is TFX's standard InfraBlessing (file INFRA_BLESSED / INFRA_NOT_BLESSED and
custom property `blessed`, which the stock Pusher reads); the other custom properties below say
why and how long, and are read back by `report.summarize_blessing`.
"""

# Exec property (beside TFX's serving_spec / validation_spec / request_spec).
LOCAL_SERVER_KEY = "local_server"

# InfraBlessing custom properties.
BLESSED_KEY = "blessed"  # TFX's: 1 blessed, 0 not
FAILURE_REASON_KEY = "infra_failure_reason"
MODE_KEY = "infra_mode"  # LOAD_ONLY or LOAD_AND_QUERY
SERVER_KEY = "infra_server"  # which model server ran the model
ATTEMPTS_KEY = "infra_attempts"
SERVER_START_SECONDS_KEY = "server_start_seconds"
LOAD_SECONDS_KEY = "load_seconds"
QUERY_SECONDS_KEY = "query_seconds"
NUM_REQUESTS_KEY = "num_requests"
REQUESTS_KEY = "infra_requests"  # JSON list of request descriptions
SKIPPED_KEY = "infra_skipped_signatures"  # JSON list of "why a signature was not queried"

LOAD_ONLY = "LOAD_ONLY"
LOAD_AND_QUERY = "LOAD_AND_QUERY"
MODES = (LOAD_ONLY, LOAD_AND_QUERY)

# Serving platforms make_infra_validator accepts; "local" is ours, the others are TFX's.
PLATFORM_LOCAL = "local"
PLATFORM_LOCAL_DOCKER = "local_docker"
PLATFORM_KUBERNETES = "kubernetes"
PLATFORMS = (PLATFORM_LOCAL, PLATFORM_LOCAL_DOCKER, PLATFORM_KUBERNETES)

DEFAULT_MODEL_NAME = "infra-validation-model"
