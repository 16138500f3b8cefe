"""The address an environment variable names for a server: ``HF_ENDPOINT`` (a hub or mirror of it)
and ``BIOFOUND_DATA_BASE_URL`` (a data-set mirror), checked by one rule before any request.

A value that is not an ``http(s)://HOST`` address is the user's typo, not a network failure:
``hf-mirror.com`` without its scheme was "cannot reach hf-mirror.com ... check the network
connection" (status 1), ``http://`` "cannot reach http:", and a malformed one (``http://[::1``) a
traceback. It is refused in one line naming the variable and its form (status 2).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from biofound_cli.errors import UsageError


def server_address(variable: str, what: str, unset: str) -> str | None:
    """The address ``variable`` names, without a trailing ``/``; ``None`` when it is unset or empty.

    Parameters
    ----------
    variable : str
        The environment variable (``HF_ENDPOINT``, ``BIOFOUND_DATA_BASE_URL``).
    what : str
        The server it names, said in the refusal (``"a hub or mirror"``).
    unset : str
        What unsetting it does, said in the refusal (``"for https://huggingface.co"``).

    Raises
    ------
    UsageError
        For a value that is not an ``http(s)://HOST`` address.
    """
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    try:
        parts = urlsplit(value)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # "http://[::1", a port that is not a number
        usable = False
    if not usable:
        raise UsageError(
            f"{variable}={value} is not the address of {what}; set it to one with its scheme "
            f"({variable}=https://HOST), or unset it {unset}"
        )
    return value.rstrip("/")
