"""The main job's mechanics: scripts/tour.py runs tour modules and leaves a readable report."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tour_writes_a_report_with_pictures(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "tour.py"), "--out", str(tmp_path),
                             "--only", "regression.tour"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "report.html").read_text()
    assert "Regression: the gap experiment" in report
    assert report.count("data:image/png;base64,") >= 4
    assert "MSE in the gap, dense net" in report
    assert "the shaded band is the gap" in report and "Terms used" in report  # captions and a glossary
    assert "by deepbio 0.1.0" in report and "torch 2." in report  # what made it
