"""InfraValidator that runs anywhere: TFX's component with a local model-server platform."""

from components.infra_validator.component import (
    InfraValidator,
    local_serving_spec,
    make_infra_validator,
)
from components.infra_validator.report import read_blessing, summarize_blessing

__all__ = [
    "InfraValidator",
    "local_serving_spec",
    "make_infra_validator",
    "read_blessing",
    "summarize_blessing",
]
