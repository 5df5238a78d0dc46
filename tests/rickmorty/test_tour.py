"""The frame task's tour sections: metrics and pictures that exist."""
from __future__ import annotations

from rickmorty.tour import run_tour


def test_run_tour_returns_sections_with_metrics_and_pictures(tmp_path):
    sections = run_tour(tmp_path, frames=200, epochs=1)
    assert len(sections) == 2
    assert {"validation accuracy", "validation AUROC"} <= set(sections[0].metrics)
    assert "trained: pointing game: heat peak inside the rick" in sections[1].metrics
    assert "chance (mask area fraction)" in sections[1].metrics
    for section in sections:
        assert section.images and all(f.path.is_file() and f.caption for f in section.images)
