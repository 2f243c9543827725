"""Engine tests, laid out like ``src/flexllm``: batch/, clients/, pool/ (helpers in each)."""
