"""Errors a user can cause while preparing data or training; each message says what to do."""


class DataError(Exception):
    """The data folder cannot be used as it is."""


class TrainError(Exception):
    """Training cannot start or continue with the given settings."""
