"""Recording ids unique within a run, whatever the corpus reader derived them from.

Readers name a recording after its file (``edf``, ``ts``, ``emg-csv``) or its BIDS entities, so
two files can get one id: ``x.edf`` and ``x.bdf`` in one folder, ``a/b.edf`` and ``a-b.edf``
(folders become dashes), or ``A.edf`` and ``a.edf`` (one shard on a case-insensitive file
system). Each id names a shard, ``OUT/<corpus>/<id>.h5``, so a collision would make one
recording overwrite another's shard.

The rule, applied once by the runner to the whole corpus before ``--shard I/N`` slices it, so
every slice and every re-run computes the same ids:

* ids that collide (ignoring case) and whose files differ by extension get the extension
  appended: ``x_edf`` and ``x_bdf``;
* otherwise the first file (in path order) keeps the id and each other one is skipped with the
  reason ``duplicate_id``, naming both files.

A BIDS id names the recording itself (its entities), so two BIDS files with one id are one
recording in two formats, not two recordings: the ``edf`` reader keeps one of them while
discovering (:func:`biofound_cli.corpora.edf.EdfCorpus.discover`) and they never reach this rule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from biofound_cli.corpora.base import RecordingRef

DUPLICATE_ID = "duplicate_id"
"""The skip reason of a recording whose id another recording of the run already has."""


@dataclass(frozen=True)
class Duplicate:
    """A recording left out because ``kept`` has its id."""

    ref: RecordingRef
    kept: RecordingRef

    @property
    def message(self) -> str:
        """One sentence naming both files and what to do, as ``preprocess`` says it."""
        return self.message_for("one shard", "read them from separate --root folders")

    def message_for(self, written_to: str, advice: str) -> str:
        """One sentence naming both files, where both would be written, and what to do besides renaming one.

        Parameters
        ----------
        written_to : str
            What the id names, e.g. ``one shard``.
        advice : str
            The other way out, e.g. ``read them from separate --root folders``.
        """
        return (
            f"{self.ref.path}: has the recording id {self.ref.recording_id!r} of {self.kept.path}, so both would be "
            f"written to {written_to}; rename one of the files (or {advice})"
        )


def extension_tag(ref: RecordingRef) -> str:
    """The file's extension as an id suffix: ``edf``, ``bdf``, ``fif_gz`` (empty without one).

    Parameters
    ----------
    ref : RecordingRef
        The recording whose main file is named.
    """
    suffixes = [suffix.lower().lstrip(".") for suffix in ref.path.suffixes]
    if not suffixes:
        return ""
    # Compressed files keep their format: x.fif.gz -> fif_gz, not gz.
    tail = suffixes[-2:] if suffixes[-1] in ("gz", "bz2", "xz", "zip") and len(suffixes) > 1 else suffixes[-1:]
    return "_".join(part for part in tail if part)


def unique_recording_ids(refs: list[RecordingRef]) -> tuple[list[RecordingRef], list[Duplicate]]:
    """Give every recording an id no other one has (ignoring case); see the module docstring.

    Parameters
    ----------
    refs : list of RecordingRef
        Every recording the corpus found (the whole corpus, before any slicing).

    Returns
    -------
    kept, duplicates
        The recordings to process, sorted by id, some renamed; and the ones left out.
    """
    groups: dict[str, list[RecordingRef]] = {}
    for ref in refs:
        groups.setdefault(ref.recording_id.casefold(), []).append(ref)
    kept: list[RecordingRef] = []
    renamed: list[RecordingRef] = []
    duplicates: list[Duplicate] = []
    for group in groups.values():
        if len(group) == 1:
            kept.append(group[0])
            continue
        group = sorted(group, key=lambda ref: str(ref.path))
        tags = [extension_tag(ref) for ref in group]
        if all(tags) and len(set(tags)) == len(tags):
            renamed += [
                dataclasses.replace(ref, recording_id=f"{ref.recording_id}_{tag}") for ref, tag in zip(group, tags, strict=True)
            ]
        else:
            kept.append(group[0])
            duplicates += [Duplicate(ref, group[0]) for ref in group[1:]]
    # A new id may be one another file already has (x_edf.edf next to x.edf and x.bdf).
    holders = {ref.recording_id.casefold(): ref for ref in kept}
    for ref in sorted(renamed, key=lambda ref: (ref.recording_id, str(ref.path))):
        holder = holders.get(ref.recording_id.casefold())
        if holder is not None:
            duplicates.append(Duplicate(ref, holder))
            continue
        holders[ref.recording_id.casefold()] = ref
        kept.append(ref)
    return sorted(kept, key=lambda ref: ref.recording_id), duplicates
