"""Grad-CAM and its check against masks, feature maps and error galleries."""
from __future__ import annotations

import pytest
import torch

from common.classifier import Classifier
from common.errors import ConfigError, DataError
from rickmorty.explain import (class_output, confusion_matrices, error_galleries, feature_maps, grad_cam,
                               grad_cam_folder, heat_in_mask, mask_area_fraction, normalise_per_image, outcomes,
                               pointing_game, predict_probabilities, save_feature_maps, save_grad_cam)
from rickmorty.models import CourseCNN


def test_normalise_per_image_scales_each_map_and_keeps_blank_maps_zero():
    heat = torch.stack([torch.full((2, 2), 4.0), torch.zeros(2, 2)])
    heat[0, 0, 0] = 8.0
    out = normalise_per_image(heat)
    assert out[0].max() == 1 and out[0, 1, 1] == 0.5 and (out[1] == 0).all() and not out.isnan().any()


def test_pointing_game_and_heat_in_mask_on_known_maps():
    masks = torch.zeros(2, 4, 4)
    masks[:, :2, :2] = 1
    heat = torch.zeros(2, 4, 4)
    heat[0, 0, 0] = 1.0  # peak inside
    heat[1, 3, 3] = 1.0  # peak outside
    heat[1, 0, 0] = 0.5
    assert pointing_game(heat, masks) == 0.5
    assert abs(heat_in_mask(heat, masks) - (1 + 1 / 3) / 2) < 1e-6
    assert mask_area_fraction(masks) == 0.25


def test_outcomes_one_vs_rest():
    probs = torch.tensor([[0.9], [0.8], [0.2], [0.1]])
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert outcomes(probs, targets, "binary", 0).tolist() == ["TP", "FP", "FN", "TN"]
    probs3 = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    assert outcomes(probs3, torch.tensor([0, 0]), "multiclass", 0).tolist() == ["TP", "FN"]


def test_a_multiclass_confusion_matrix_is_titled_by_its_classes():
    model = Classifier(CourseCNN(), ["healthy", "early", "late"], task="multiclass")
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])
    [(title, matrix, labels)] = confusion_matrices(model, probs, torch.tensor([0, 1, 2, 2]))
    assert title == "healthy / early / late" and labels == ["healthy", "early", "late"]
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]  # rows: true class


def test_binary_negative_class_is_explained_by_the_negated_logit():
    model = Classifier(CourseCNN(), ["not_rick", "rick"])
    assert class_output(model, "rick") == (0, 1.0) and class_output(model, "not_rick") == (0, -1.0)


def test_grad_cam_of_trained_cnn_points_at_rick_far_more_than_untrained(synthetic_cnn, tmp_path):
    model, data = synthetic_cnn
    images, targets, names = data.part_frames("val")
    masks = data.frames.masks[data.parts["val"]][:, 0]
    with_rick = targets > 0.5
    assert model.last_metrics["val_acc"] > 0.8
    trained = grad_cam(model, images[with_rick], "rick")
    torch.manual_seed(0)
    untrained = grad_cam(Classifier(CourseCNN(), data.class_names).eval(), images[with_rick], "rick")
    assert trained.shape == (int(with_rick.sum()), 90, 160) and 0 <= trained.min() and trained.max() <= 1
    chance = mask_area_fraction(masks[with_rick])
    hit_trained, hit_untrained = pointing_game(trained, masks[with_rick]), pointing_game(untrained, masks[with_rick])
    print(f"pointing game: trained {hit_trained:.2f}, untrained {hit_untrained:.2f}, chance {chance:.3f}; heat in "
          f"mask: trained {heat_in_mask(trained, masks[with_rick]):.2f}, "
          f"untrained {heat_in_mask(untrained, masks[with_rick]):.2f}")
    assert hit_trained > 3 * chance and hit_trained > hit_untrained + 0.2
    assert heat_in_mask(trained, masks[with_rick]) > heat_in_mask(untrained, masks[with_rick])
    assert save_grad_cam(model, images[:4], "rick", tmp_path / "cam.png", names[:4]).stat().st_size > 1000
    maps = feature_maps(model, images[0], "backbone.features.0")
    assert maps.shape == (20, 43, 78)
    with pytest.raises(ConfigError, match="backbone.features.0.0"):
        feature_maps(model, images[0], "backbone.nothing")
    assert save_feature_maps(maps, tmp_path / "maps.png").is_file()
    paths = error_galleries(model, images, predict_probabilities(model, images), targets, tmp_path)
    assert [p.name for p in paths] == ["gallery_rick.png"] and paths[0].is_file()


def test_explanations_give_the_model_back_in_the_mode_it_was_in():
    model = Classifier(CourseCNN(), ["not_rick", "rick"]).train()
    frames = torch.randint(0, 256, (2, 3, 90, 160), dtype=torch.uint8)
    for explain in (lambda: predict_probabilities(model, frames), lambda: grad_cam(model, frames, "rick"),
                    lambda: feature_maps(model, frames[0], "backbone.features.0")):
        explain()
        assert model.training  # a training loop that calls them keeps its dropout


def test_frames_in_other_shapes_or_ranges_are_read_or_refused_clearly():
    model = Classifier(CourseCNN(), ["not_rick", "rick"])
    frames = torch.randint(0, 256, (2, 3, 90, 160), dtype=torch.uint8)
    assert torch.equal(predict_probabilities(model, frames.numpy()), predict_probabilities(model, frames))
    one_frame = r"the frames are \(3, 90, 160\), but this model reads batches \(N, 3, 90, 160\)"
    for wrong, message in ((frames[0], one_frame),
                           (frames.permute(0, 2, 3, 1), r"the frames are \(2, 90, 160, 3\)"),
                           (frames.float(), r"float frames must be in \[0, 1\], these reach 255")):
        with pytest.raises(DataError, match=message):
            predict_probabilities(model, wrong)


def test_grad_cam_for_a_folder_skips_bad_files(tmp_path, frame_tree):
    folder = tmp_path / "frames"
    folder.mkdir()
    for path in sorted((frame_tree / "rick").iterdir())[:2]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"no")
    model = Classifier(CourseCNN(), ["rick", "morty", "neither"], task="multiclass")
    with pytest.warns(UserWarning, match="broken.jpg"):
        assert grad_cam_folder(model, folder, "morty", tmp_path / "cam.png").is_file()
