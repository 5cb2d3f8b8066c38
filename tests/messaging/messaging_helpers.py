"""Helpers for the messaging core tests: Meta's real webhook bodies from
``../shared/meta_payloads`` and a signed-POST helper."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from everreach.settings import project_root
from webhook_receiver.signature import sign
from webhook_receiver.testing import RunningReceiver

APP_SECRET = "messaging-core-test-secret"
#: Other projects' webhook captures, kept next to (never inside) this repository.
CORPUS = project_root().parent / "shared" / "meta_payloads"


def corpus_files() -> list[Path]:
    """Every body the corpus manifest lists (skips, visibly, where the corpus is absent)."""
    manifest = CORPUS / "manifest.json"
    if not manifest.exists():
        pytest.skip(f"Meta webhook corpus not found at {CORPUS} (it lives outside the repo)")
    return [CORPUS / item["file"] for item in json.loads(manifest.read_text("utf-8"))]


@dataclass
class Poster:
    """POSTs raw bytes to the receiver, signed like Meta."""

    receiver: RunningReceiver
    client: httpx.Client

    def post(self, raw: bytes) -> httpx.Response:
        """Sign and POST ``raw``; returns the answer."""
        return self.client.post(
            self.receiver.webhook_url,
            content=raw,
            headers={
                "x-hub-signature-256": sign(APP_SECRET, raw),
                "content-type": "application/json",
            },
        )
