"""The ``[download]`` section: the official weights and the open data set a recipe needs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from biofound_cli.recipes.base import Section


class DownloadSection(Section):
    """What ``biofound download --recipe R.toml`` fetches.

    The weights are those that ``model.checkpoint = "hub:MODEL/FOLDER"`` reads, unless ``model``
    names them here (then both must name the same file); the data set is ``dataset``.
    """

    model: str | None = Field(
        None,
        description="Official weights to fetch: femba, luna, tinymyo or a variant (luna-large); "
        'unset: those model.checkpoint = "hub:..." reads.',
    )
    variant: str | None = Field(None, description="Model size, e.g. base, large, huge; unset: the model's default.")
    task: str | None = Field(
        None,
        description="Fine-tuned checkpoint of a downstream task (TUAB, TUAR, TUSL, DB5, UCI_EMG, EPN612); "
        "unset: the pre-trained weights.",
    )
    revision: str | None = Field(None, description="Hub branch, tag or commit of the weights; unset: main.")
    dest: Path | None = Field(
        None,
        description="Put the weights into this folder instead of the hub cache; hub: references then read them from here.",
    )
    dataset: str | None = Field(
        None,
        description="Open data set to fetch over HTTP (siena, uci-emg, epn612, db5) or a TUH corpus "
        "(tuab, tuar, tusl, tueg: prints the steps).",
    )
    dataset_dir: Path = Field(Path("data"), description="Folder the data set is downloaded and unpacked into.")
