"""Fixtures for the download tests: a loopback fake hub, an isolated cache, tiny manifests."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Iterator

import pytest
from fixtures.fake_hub import TINY_MANIFESTS, FakeHub

import biofound_cli.download_retries as download_retries
import biofound_cli.hub as hub


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A started fake hub; HF_ENDPOINT points at it and every cache lives under ``tmp_path``."""
    import huggingface_hub.constants as constants

    server = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for variable in (
        "HF_HUB_OFFLINE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(variable, raising=False)
    # huggingface_hub read these at import time; the code under test passes the endpoint and the
    # cache explicitly (constants.ENDPOINT stays: hf_hub_url swaps it for the endpoint passed in).
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 5)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 5)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "hf" / ".agent_harnesses.json"), raising=False)
    # huggingface_hub writes a transfer to disk 10 MiB at a time; the fake files are about 1 KiB,
    # so a smaller step lets a connection dropped half way leave bytes to resume from.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 256)
    monkeypatch.setattr(hub, "_manifests", lambda: TINY_MANIFESTS)
    monkeypatch.setattr(download_retries, "RETRY_WAIT_SECONDS", 0.0)  # a busy hub is asked again at once here
    monkeypatch.setattr(download_retries, "RETRY_AFTER_LIMIT_SECONDS", 0.0)  # and a Retry-After is not waited
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def silent_hub(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The address of a loopback listener that accepts and never answers, as ``HF_ENDPOINT``; each wait 0.5 s."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        address = f"http://127.0.0.1:{listener.getsockname()[1]}"
        monkeypatch.setenv("HF_ENDPOINT", address)
        monkeypatch.setenv("BIOFOUND_DOWNLOAD_TIMEOUT", "0.5")
        yield address


@pytest.fixture
def unaccepting_host(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The address of a loopback listener whose backlog is full, so that it accepts no connection, as ``HF_ENDPOINT``.

    The connect wait (``CONNECT_TIMEOUT_SECONDS``) is 0.3 s and the read wait
    (``BIOFOUND_DOWNLOAD_TIMEOUT``) 5 s, so a message names which one ran out. On Linux a full
    backlog drops the next connection attempts, as a host behind a firewall that drops them does.
    """
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(3):  # fill the backlog; these are never accepted
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(address)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{address[1]}")
        monkeypatch.setenv("BIOFOUND_DOWNLOAD_TIMEOUT", "5")
        monkeypatch.setattr(download_retries, "CONNECT_TIMEOUT_SECONDS", 0.3)
        yield f"http://127.0.0.1:{address[1]}"
