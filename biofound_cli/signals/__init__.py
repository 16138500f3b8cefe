"""The signal chain shared by every corpus: channel names, filters, resampling, montage, windows.

Modules work on plain ``(n_channels, n_samples)`` arrays with ``sfreq`` and ``ch_names``
beside them; :mod:`biofound_cli.signals.chain` runs them in order for one recording.
"""
