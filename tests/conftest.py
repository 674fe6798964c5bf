"""Shared test set-up: TensorFlow quiet and in legacy-Keras mode before anything imports it."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
