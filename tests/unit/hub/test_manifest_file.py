from __future__ import annotations

import json

from fixtures.manifests import OUT, build_manifest


def test_shipped_manifest_matches_the_official_key_lists():
    shipped = json.loads(OUT.read_text())
    assert shipped == build_manifest()
    assert set(shipped["variants"]) == {
        "femba-tiny",
        "femba-base",
        "femba-large",
        "femba-huge",
        "luna-base",
        "luna-large",
        "luna-huge",
        "tinymyo",
    }
