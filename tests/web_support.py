"""Demo data for the page tests: the CEFTA demo registry, and where each of its stories lives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from registry.services import demo


@dataclass(frozen=True)
class DemoLicence:
    party: str
    slot: int
    story: str
    operator_id: str
    certificate: str

    @property
    def public(self) -> bool:
        """The demo publishes the holder's name for every other operator."""
        return self.slot % 2 == 0


def load_demo(registry, tmp_path: Path) -> dict[str, dict[str, str]]:
    """The demo registry at the frozen time; returns its tokens by party and role."""
    tokens_file = tmp_path / "demo-tokens.json"
    with registry.session() as session:
        demo.load(session, registry.keyring, registry.now(), tokens_file)
    return json.loads(tokens_file.read_text())


def demo_licence(story: str, party: str | None = None, public: bool | None = None) -> DemoLicence:
    """The first demo licence with this story (of this party, with this publicity)."""
    for code, stories in demo.stories().items():
        for slot, told in enumerate(stories):
            if told != story or (party and code != party) or (public is not None and (slot % 2 == 0) != public):
                continue
            first = demo.licence_versions(code, slot, story, date(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC))[0]
            return DemoLicence(code, slot, story, f"{code}{demo.national_number(code, 100 + slot)}",
                               demo.certificate_number(code, first["type"], slot))
    raise LookupError(f"no demo licence with story {story}")
