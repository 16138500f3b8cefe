"""biofound: raw EEG/EMG recordings to trained, evaluated and exported foundation models."""

__version__ = "0.1.0"

PACKAGE_LOGGER = __name__
"""The logger every core module's ``logging.getLogger(__name__)`` descends from."""
