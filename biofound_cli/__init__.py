"""biofound: raw EEG/EMG recordings to trained, evaluated and exported foundation models."""

__version__ = "0.1.0"
