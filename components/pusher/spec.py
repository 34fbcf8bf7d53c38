"""Keys of LayoutPusher: the stock Pusher's channels plus its custom_config keys."""

from tfx.types import standard_component_specs

MODEL_KEY = standard_component_specs.MODEL_KEY
MODEL_BLESSING_KEY = standard_component_specs.MODEL_BLESSING_KEY
INFRA_BLESSING_KEY = standard_component_specs.INFRA_BLESSING_KEY
PUSHED_MODEL_KEY = standard_component_specs.PUSHED_MODEL_KEY
CUSTOM_CONFIG_KEY = standard_component_specs.CUSTOM_CONFIG_KEY

SERVING_DIR_CONFIG = "serving_dir"
MODEL_NAME_CONFIG = "model_name"

# Custom properties of the PushedModel artifact (the stock Pusher's names).
PUSHED_PROPERTY = "pushed"
PUSHED_VERSION_PROPERTY = "pushed_version"
PUSHED_DESTINATION_PROPERTY = "pushed_destination"

# InfraBlessing property set by InfraValidator when it wrote a warmed-up model copy.
HAS_MODEL_PROPERTY = "has_model"
