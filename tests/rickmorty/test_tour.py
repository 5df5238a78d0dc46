"""The frame task's tour sections: metrics and pictures that exist."""
from __future__ import annotations

from rickmorty.tour import run_tour


def test_run_tour_returns_sections_with_metrics_and_pictures(tmp_path):
    sections = run_tour(tmp_path, frames=200, epochs=1)
    assert len(sections) == 2
    assert {"acc", "auroc"} <= set(sections[0].metrics)
    assert "trained_pointing_game" in sections[1].metrics and "chance (mask area fraction)" in sections[1].metrics
    for section in sections:
        assert section.images and all(p.is_file() for p in section.images)
