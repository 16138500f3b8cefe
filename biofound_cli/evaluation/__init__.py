"""Evaluation: metrics per task type (``metrics``), the report with bootstrap intervals and
per-recording aggregation (``report``), plots (``plots``), scoring a checkpoint on a packed split
(``predict``) and the ``biofound evaluate`` stage that ties them together (``evaluate``)."""
