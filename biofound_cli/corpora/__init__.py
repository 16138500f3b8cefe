"""Corpus readers: one module per data set, each a :class:`~biofound_cli.corpora.base.Corpus`.

Corpora know about files, folder layouts and label rules; they know nothing of models.
The registry maps each command-line name to ``"module:Class"`` and imports a reader only
when it is asked for, so listing names stays cheap and one broken reader cannot break the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from biofound_cli.errors import UsageError, unknown_name

if TYPE_CHECKING:
    from biofound_cli.corpora.base import Corpus

CORPORA: dict[str, str] = {
    "tuab": "biofound_cli.corpora.tuab:TUABCorpus",
    "tuar": "biofound_cli.corpora.tuar:TUARCorpus",
    "tusl": "biofound_cli.corpora.tusl:TUSLCorpus",
    "tueg": "biofound_cli.corpora.tueg:TUEGCorpus",
    "emg-csv": "biofound_cli.corpora.emg_csv:EmgCsvCorpus",
    "table": "biofound_cli.corpora.table:TableCorpus",
    "ts": "biofound_cli.corpora.ts:TsCorpus",
    "siena": "biofound_cli.corpora.siena:SienaCorpus",
    "seedv": "biofound_cli.corpora.seedv:SeedVCorpus",
    "db5": "biofound_cli.corpora.db5:Db5Corpus",
    "uci-emg": "biofound_cli.corpora.uci_emg:UciEmgCorpus",
    "epn612": "biofound_cli.corpora.epn612:Epn612Corpus",
    "edf": "biofound_cli.corpora.edf:EdfCorpus",
}

CORPUS_NAMES: tuple[str, ...] = tuple(CORPORA)


def get_corpus(name: str) -> type["Corpus"]:
    """The reader class registered under ``name`` (e.g. ``"tuab"``).

    Parameters
    ----------
    name : str
        A key of ``CORPORA``, the corpus name a recipe's ``preprocess.corpus`` gives.

    Raises
    ------
    UsageError
        If no corpus has that name; the message lists the known names.
    """
    target = CORPORA.get(name)
    if target is None:
        raise UsageError(unknown_name("corpus", name, sorted(CORPORA)))
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
