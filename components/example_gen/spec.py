"""Channel and property keys of ImageExampleGen, imported by component, executor and tests."""

EXAMPLES_KEY = "examples"

SOURCE_KIND_KEY = "source_kind"
SOURCE_PATH_KEY = "source_path"
IMAGE_HEIGHT_KEY = "image_height"
IMAGE_WIDTH_KEY = "image_width"
EVAL_PERCENT_KEY = "eval_percent"
FINGERPRINT_KEY = "source_fingerprint"

# Custom properties recorded on the Examples artifact.
CLASS_NAMES_PROPERTY = "class_names"
IMAGE_SHAPE_PROPERTY = "image_shape"
SPLIT_COUNTS_PROPERTY = "split_counts"
