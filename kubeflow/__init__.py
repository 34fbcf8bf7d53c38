"""Kubeflow Pipelines and Kubernetes: compile and submit the pipeline, publish models, Beam arguments."""
