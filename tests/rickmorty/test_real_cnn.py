"""The course CNN on the real frames with the scene-grouped split beats the majority class by a clear margin."""
from __future__ import annotations

from common.classifier import Classifier
from common.seeding import seed_everything
from common.trainer import build_trainer
from rickmorty.data import FrameData
from rickmorty.models import CourseCNN


def test_course_cnn_beats_majority_on_real_grouped_split(course_data, tmp_path):
    # Three epochs (small batches: more steps per frame) keep this test short; benchmarks/rickmorty_quality.py
    # trains longer. The course CNN needs about two epochs before it starts to separate the classes.
    data = FrameData(str(course_data / "RickandMorty"), task="binary", split="grouped", batch_size=16, seed=0)
    data.setup("fit")
    assert data.split_report()["scene_groups_shared"] == 0
    seed_everything(0)
    model = Classifier(CourseCNN(), data.class_names, task="binary", channels_last=True)
    # The best epoch by validation accuracy, as the course's checkpoint callback keeps it.
    trainer = build_trainer(max_epochs=3, cpu_bf16=True, default_root_dir=str(tmp_path), enable_progress_bar=False,
                            logger=False, monitor="val_acc", mode="max")
    trainer.fit(model, data)
    _, val_targets, _ = data.part_frames("val")
    majority = max(val_targets.mean().item(), 1 - val_targets.mean().item())
    best = trainer.validate(model, data, ckpt_path="best", verbose=False)[0]
    print(f"real frames, grouped split: best-checkpoint val accuracy {best['val_acc']:.3f}, "
          f"majority rate {majority:.3f}, AUROC {best['val_auroc']:.3f}")
    assert best["val_acc"] == trainer.checkpoint_callback.best_model_score.item()
    assert best["val_acc"] > majority + 0.06
    assert best["val_auroc"] > 0.6
