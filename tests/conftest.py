"""Shared test set-up: TensorFlow quiet and in legacy-Keras mode before anything imports it."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.sshkit import root_sshd  # noqa: E402,F401  (a real sshd on 127.0.0.1, for tests/bench and tests/remote)
