"""The frame task's part of the tour: the course CNN on synthetic cartoon frames, explained and checked with Grad-CAM."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from common.classifier import Classifier
from common.plots import plot_confusion
from common.report import Figure, Section
from common.trainer import build_trainer
from rickmorty.data import FrameData
from rickmorty.explain import (confusion_matrices, error_galleries, feature_maps, grad_cam, heat_in_mask,
                               mask_area_fraction, pointing_game, predict_probabilities, save_feature_maps,
                               save_grad_cam)
from rickmorty.models import CourseCNN


def grad_cam_check(model: Classifier, images: torch.Tensor, masks: torch.Tensor, class_name: str) -> dict[str, float]:
    """Return the pointing-game hit rate and heat-in-mask fraction of `model`'s Grad-CAM on frames with masks."""
    heat = grad_cam(model, images, class_name)
    return {"pointing_game": pointing_game(heat, masks), "heat_in_mask": heat_in_mask(heat, masks),
            "blank_maps": (heat.flatten(1).max(1).values == 0).float().mean().item()}


def run_tour(run_dir: Path, frames: int = 1000, epochs: int = 4) -> list[Section]:
    """Train the course CNN ("rick?") on synthetic frames; return report sections with metrics and PNGs."""
    run_dir = Path(run_dir)
    start = time.time()
    torch.manual_seed(0)
    data = FrameData(None, task="binary", synthetic_count=frames, batch_size=32)
    model = Classifier(CourseCNN(), data.class_names, task="binary", channels_last=True)
    trainer = build_trainer(max_epochs=epochs, cpu_bf16=True, default_root_dir=str(run_dir), run_name="rickmorty",
                            enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(model, data)
    settings = f"{trainer.precision} + channels_last on {trainer.strategy.root_device.type.upper()}"
    model = model.float().eval()
    images, targets, names = data.part_frames("val")
    labels = {"acc": "validation accuracy", "bal_acc": "validation balanced accuracy", "auroc": "validation AUROC",
              "f1": "validation F1 (rick)"}
    metrics = {labels[k]: round(model.last_metrics[f"val_{k}"].item(), 3) for k in labels}
    share = float(targets.float().mean())
    metrics.update({"majority-class rate (accuracy by always guessing it)": round(max(share, 1 - share), 3),
                    "validation frames (held out from training)": len(targets)})
    probs = predict_probabilities(model, images)
    galleries = error_galleries(model, images, probs, targets, run_dir)
    title, matrix, classes = confusion_matrices(model, probs, targets)[0]
    pictures = [Figure(path, "Validation frames the model got right and wrong (true/false positives and negatives) "
                             "with its probability of 'rick': the errors show what confuses it.") for path in galleries]
    confusion = plot_confusion(matrix, classes, run_dir / "confusion.png", f"'{title}' on validation frames")
    pictures.append(Figure(confusion, "Confusion matrix on the validation frames: rows are the truth, columns the "
                                      "prediction."))
    trained_seconds = time.time() - start

    start = time.time()
    with_rick = targets > 0.5
    masks = data.frames.masks[data.parts["val"]][with_rick][:, 0]
    shown = images[with_rick]
    trained = grad_cam_check(model, shown, masks, "rick")
    untrained = grad_cam_check(Classifier(CourseCNN(), data.class_names).eval(), shown, masks, "rick")
    measures = {"pointing_game": "pointing game: heat peak inside the rick", "heat_in_mask": "share of heat inside "
                "the rick", "blank_maps": "share of blank maps (no positive evidence)"}
    check = {**{f"trained: {measures[k]}": round(v, 3) for k, v in trained.items()},
             **{f"untrained: {measures[k]}": round(v, 3) for k, v in untrained.items()},
             "chance (mask area fraction)": round(mask_area_fraction(masks), 3),
             "validation frames with a rick": len(shown)}
    rick_names = [n for n, r in zip(names, with_rick.tolist()) if r]
    cam_pictures = [
        Figure(save_grad_cam(model, shown[:8], "rick", run_dir / "grad_cam_rick.png", rick_names[:8]),
               "Grad-CAM heat for 'rick' on 8 validation frames with a rick: red marks the regions that raise the "
               "score most. Where the heat sits (head, coat, legs, or background) shows what the model uses."),
        Figure(save_feature_maps(feature_maps(model, shown[0], model.backbone.features[0]),
                                 run_dir / "feature_maps_conv1.png", f"first convolution on {rick_names[0]}"),
               f"The 20 maps of the first convolution on frame {rick_names[0]} (yellow: strong response). Each filter "
               "responds to its own colours or edges; a dark map is a filter this frame does not excite.")]
    return [
        Section("Rick and Morty frames: the course CNN on synthetic frames",
                f"The course CNN (3 conv layers, Dense 100, dropout) learns 'is there a rick?' from {frames} "
                f"procedurally drawn 160x90 frames (ricks, mortys, look-alike distractors, clutter) in {epochs} "
                f"epochs ({settings}). Galleries show true/false positives/negatives.",
                metrics, pictures, trained_seconds),
        Section("Rick and Morty frames: Grad-CAM checked against the character masks",
                "Grad-CAM (Captum LayerGradCam on the last conv layer, ReLU, bilinear upsampling, per-image "
                "scaling) for 'rick' on validation frames with a rick. Pointing game: is the heat map's peak "
                "inside the rick mask? Chance is the mask's area fraction. Blank maps (no positive evidence) "
                "count as misses.", check, cam_pictures, time.time() - start),
    ]
