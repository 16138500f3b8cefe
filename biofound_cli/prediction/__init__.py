"""``biofound predict``: a trained model on new raw recordings, through the chain recorded with it.

:mod:`~biofound_cli.prediction.model` loads the model (PyTorch or onnxruntime),
:mod:`~biofound_cli.prediction.chain` resolves the preprocessing chain,
:mod:`~biofound_cli.prediction.recordings` finds the recordings and
:mod:`~biofound_cli.prediction.run` predicts them into tables, PNGs and ``summary.json``.
"""
