"""Dataset builders: the offline default suite (``python -m dataset_scripts.default_suite``)."""
