"""Exception types a user can cause; each message names the file, record or setting and what to do."""


class DeepBioError(Exception):
    """Base class of every error deepbio raises on purpose."""


class DataError(DeepBioError, ValueError):
    """Input data is missing, malformed or inconsistent."""


class ConfigError(DeepBioError, ValueError):
    """A setting has a value deepbio cannot use."""
