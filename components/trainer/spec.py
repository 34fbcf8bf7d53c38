"""Keys of the project's Trainer component beside TFX's TrainerSpec keys."""

# Exec property: the module as the user named it (file path or run_fn Python path). TFX replaces
# `module_file` with the packaged wheel's `module_path`; errors name this instead.
MODULE_SOURCE_KEY = "module_source"
