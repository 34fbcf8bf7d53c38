"""Keys of the strict ExampleValidator (the stock component's, restated once here)."""

from tfx.types import standard_component_specs

STATISTICS_KEY = standard_component_specs.STATISTICS_KEY
SCHEMA_KEY = standard_component_specs.SCHEMA_KEY
ANOMALIES_KEY = standard_component_specs.ANOMALIES_KEY
ANOMALIES_FILE = "SchemaDiff.pb"
