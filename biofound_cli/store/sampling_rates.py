"""One sampling rate per packed data set: what to set when recordings come at several.

A folder of recordings preprocessed at their native rates (``sfreq = 0``, the ``edf`` corpus's
default) that were recorded at different rates gives shards ``pack`` cannot put together: it
keeps the rate most shards have (:func:`~biofound_cli.store.majority.first_of_most`) and skips
the rest. ``preprocess`` says so before any work when the recordings' headers give a second rate
(:meth:`~biofound_cli.corpora.base.Corpus.header_rate`: EDF/BDF, the TUH corpora's too), else as soon as a second rate is
written (:class:`RateWatch` hears both), and names at the end every recording ``pack`` will skip,
with the same rate to resample to: :func:`mixed_rates_warning`.
"""

from __future__ import annotations

from biofound_cli.plural import first_few
from biofound_cli.store.majority import first_of_most

MAX_NAMED = 5
"""Recordings a warning names before it says how many more there are."""


def resample_advice(rate: float) -> str:
    """What to set so that every recording is at ``rate``, the rate ``pack`` keeps.

    Parameters
    ----------
    rate : float
        The output rate to resample every recording to, in Hz.
    """
    return f"set preprocess.sfreq = {rate:g} and re-run preprocess with --force to resample every file to one rate"


def rate_key(rate: float) -> float:
    """A rate as shards are compared by it (to a millionth of a hertz).

    Parameters
    ----------
    rate : float
        A shard's ``sfreq``.
    """
    return round(float(rate), 6)


def mixed_rates_warning(rates: list[tuple[str, str, float]]) -> str:
    """The warning for shards at more than one rate, naming those ``pack`` will skip; ``""`` for one rate.

    Parameters
    ----------
    rates : list of (shard name, source file, rate)
        The run's shards, sorted by shard name (``<corpus>/<id>.h5``, the order ``pack`` reads them in).
    """
    if len({rate_key(rate) for _, _, rate in rates}) < 2:
        return ""
    kept, tied = first_of_most([rate_key(rate) for _, _, rate in rates])
    odd = [(source, rate) for _, source, rate in rates if rate_key(rate) != kept]
    named = first_few([f"{source} ({rate:g} Hz)" for source, rate in odd], MAX_NAMED)
    tie = f" (a tie between {tied} rates, which goes to the first shard's)" if tied > 1 else ""
    return (
        f"the recordings are at {len({rate_key(rate) for _, _, rate in rates})} sampling rates and preprocess.sfreq = 0 "
        f"keeps each one's own; pack packs one rate only, {kept:g} Hz{tie}, and will skip {len(odd)} of "
        f"{len(rates)}: {named}; {resample_advice(kept)}"
    )


class RateWatch:
    """Watches the rates of a native-rate run's recordings, to say as soon as a second one is known.

    It hears the rates the headers give before any work, then those of the shards as they are
    written: a second rate is said once, whichever tells it first.

    The whole account, every recording ``pack`` will skip, comes at the end
    (:func:`mixed_rates_warning`); this early line lets a user stop a long run and set
    ``preprocess.sfreq`` before the rest is processed at rates that will not pack.
    """

    def __init__(self) -> None:
        self.first: tuple[str, float] | None = None
        self.said = False

    def see(self, source: str, rate: float) -> str:
        """The early warning when ``rate`` is the second rate seen, ``""`` otherwise (and after it was said).

        Parameters
        ----------
        source : str
            The recording's file.
        rate : float
            Its header's or its shard's rate; 0 (unknown) is ignored.
        """
        if not rate or self.said:
            return ""
        if self.first is None:
            self.first = (source, rate)
            return ""
        if rate_key(rate) == rate_key(self.first[1]):
            return ""
        self.said = True
        return (
            f"{source} is at {rate:g} Hz and {self.first[0]} at {self.first[1]:g} Hz: preprocess.sfreq = 0 keeps each file's "
            "own rate, and pack packs one rate only; set preprocess.sfreq and re-run preprocess with --force to resample "
            "every file to one rate (Ctrl-C stops this run); the end of the run names each recording pack would skip"
        )
