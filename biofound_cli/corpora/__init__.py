"""Corpus readers: one module per data set, each a :class:`~biofound_cli.corpora.base.Corpus`.

Corpora know about files, folder layouts and label rules; they know nothing of models.
"""
