"""Everything that runs inside `python -m serving.server`, the embedded TF Serving (map: serving/README.md)."""
