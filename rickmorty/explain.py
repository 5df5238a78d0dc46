"""Looking inside a frame classifier: Grad-CAM (Captum) and its check against masks, feature maps, error galleries."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn
from torchmetrics.functional import classification as tmf

from common.cpu_memory import heap_reuse
from common.errors import ConfigError
from common.modes import restores_mode
from common.plots import plt, save_figure
from rickmorty.images import as_float, read_folder


@restores_mode
@heap_reuse()
def predict_probabilities(model: nn.Module, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Return the classifier's probabilities (N, n_outputs) for uint8 or float frames (N, 3, H, W)."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model.probabilities(model(as_float(images[i:i + batch_size])))
                          for i in range(0, len(images), batch_size)])


def explained_layer(model: nn.Module) -> nn.Module:
    """Return the conv layer Grad-CAM explains: the backbone's `last_conv`."""
    layer = getattr(model.backbone, "last_conv", None)
    if layer is None:
        raise ConfigError(f"{type(model.backbone).__name__} has no convolution layer to explain (no `last_conv`)")
    return layer


def class_output(model: nn.Module, class_name: str) -> tuple[int, float]:
    """Return (output index, sign) whose logit speaks for `class_name`; a binary model's negative class is -logit."""
    if class_name not in model.class_names:
        raise ConfigError(f"unknown class {class_name!r}; the model knows {model.class_names}")
    index = model.class_names.index(class_name)
    if model.task == "binary":
        return 0, 1.0 if index == 1 else -1.0
    return index, 1.0


def normalise_per_image(heat: torch.Tensor) -> torch.Tensor:
    """Return maps (N, H, W) scaled to [0, 1] image by image; an all-zero map stays zero (no NaN)."""
    peak = heat.flatten(1).max(1).values.view(-1, 1, 1)
    return torch.where(peak > 0, heat / peak.clamp(min=1e-12), torch.zeros_like(heat))


@restores_mode
@heap_reuse()
def grad_cam(model: nn.Module, images: torch.Tensor, class_name: str, layer: nn.Module | None = None,
             batch_size: int = 64) -> torch.Tensor:
    """Return Grad-CAM heat maps (N, H, W) in [0, 1] for `class_name`: ReLU'd, upsampled bilinearly, per-image scaled."""
    index, sign = class_output(model, class_name)
    model.eval()
    cam = LayerGradCam(lambda x: sign * model(x).float(), layer or explained_layer(model))
    maps = []
    for start in range(0, len(images), batch_size):
        x = as_float(images[start:start + batch_size])
        attribution = cam.attribute(x, target=index, relu_attributions=True)
        upsampled = LayerAttribution.interpolate(attribution.float(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
        maps.append(upsampled[:, 0].detach())
    return normalise_per_image(torch.cat(maps).clamp(min=0))


def pointing_game(heat: torch.Tensor, masks: torch.Tensor) -> float:
    """Return the fraction of maps (N, H, W) whose maximum lies inside the mask (N, H, W)."""
    peak = heat.flatten(1).argmax(1)
    return masks.flatten(1).gather(1, peak[:, None]).float().mean().item()


def heat_in_mask(heat: torch.Tensor, masks: torch.Tensor) -> float:
    """Return the mean fraction of each map's heat that falls inside its mask (maps with no heat count 0)."""
    total = heat.flatten(1).sum(1)
    inside = (heat * masks).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-12), torch.zeros_like(total)).mean().item()


def mask_area_fraction(masks: torch.Tensor) -> float:
    """Return the mean fraction of the frame the masks cover: the chance level of both Grad-CAM scores."""
    return masks.float().flatten(1).mean(1).mean().item()


def grad_cam_overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.5) -> np.ndarray:
    """Return an RGB array (H, W, 3) in [0, 1]: the frame (3, H, W) blended with the heat map (H, W) in 'jet' colours."""
    frame = as_float(image).permute(1, 2, 0).numpy()
    colours = plt.get_cmap("jet")(heat.numpy())[..., :3]
    weight = alpha * heat.numpy()[..., None]  # cold areas keep the frame visible
    return (1 - weight) * frame + weight * colours


def image_grid(pictures: list[np.ndarray], captions: list[str], path: str | Path, columns: int = 4,
               title: str = "", cell_inches: tuple[float, float] = (3.2, 2.1), cmap: str | None = None) -> Path:
    """Save pictures with a caption each as one PNG grid; return its path.

    Pictures are (H, W, 3) arrays in [0, 1], or with `cmap` (H, W) maps of any range, coloured by it.
    """
    rows = max(1, -(-len(pictures) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(cell_inches[0] * columns, cell_inches[1] * rows + 0.4),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, picture, caption in zip(axes.flat, pictures, captions):
        ax.imshow(picture if cmap else np.clip(picture, 0, 1), cmap=cmap)
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def frame_pictures(images: torch.Tensor) -> list[np.ndarray]:
    """Return frames (N, 3, H, W) as a list of (H, W, 3) arrays in [0, 1] for plotting."""
    return list(as_float(images).permute(0, 2, 3, 1).numpy())


def save_grad_cam(model: nn.Module, images: torch.Tensor, class_name: str, path: str | Path,
                  names: list[str] | None = None) -> Path:
    """Save Grad-CAM overlays for `class_name` on frames (N, 3, H, W), each captioned with its probability."""
    heat = grad_cam(model, images, class_name)
    index, sign = class_output(model, class_name)
    probs = predict_probabilities(model, images)[:, index]
    probs = probs if sign > 0 else 1 - probs
    names = names or [f"frame {i}" for i in range(len(images))]
    captions = [f"{n}\np({class_name})={p:.2f}" for n, p in zip(names, probs.tolist())]
    pictures = [grad_cam_overlay(image, h) for image, h in zip(images, heat)]
    return image_grid(pictures, captions, path, title=f"Grad-CAM for '{class_name}'")


def grad_cam_folder(model: nn.Module, folder: str | Path, class_name: str, path: str | Path) -> Path:
    """Save Grad-CAM overlays for `class_name` on every readable frame of a folder (bad files warned and skipped)."""
    images, names = read_folder(folder)
    return save_grad_cam(model, images, class_name, path, names)


@restores_mode
def feature_maps(model: nn.Module, image: torch.Tensor, layer: nn.Module | str) -> torch.Tensor:
    """Return the activations (C, h, w) of `layer` (a module, or its name such as "backbone.features.0") for one frame."""
    if isinstance(layer, str):
        try:
            layer = model.get_submodule(layer)
        except AttributeError:
            names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
            raise ConfigError(f"the model has no layer {layer!r}; its conv layers are {names}") from None
    captured = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.setdefault("maps", output.detach()))
    try:
        model.eval()
        with torch.no_grad():
            model(as_float(image[None]))
    finally:
        handle.remove()
    return captured["maps"][0].float()


def save_feature_maps(maps: torch.Tensor, path: str | Path, title: str = "", columns: int = 8) -> Path:
    """Save feature maps (C, h, w) as a grid of coloured images, one per channel; return the PNG path."""
    return image_grid([m.numpy() for m in maps], [str(c) for c in range(len(maps))], path, columns, title,
                      cell_inches=(1.6, 1.0), cmap="viridis")


def outcomes(probs: torch.Tensor, targets: torch.Tensor, task: str, output: int) -> np.ndarray:
    """Return 'TP', 'FP', 'FN' or 'TN' per frame for one output (one-vs-rest for multiclass)."""
    if task == "multiclass":
        predicted, actual = probs.argmax(1) == output, targets == output
    else:
        predicted, actual = probs[:, output] >= 0.5, targets.view(len(targets), -1)[:, output] >= 0.5
    codes = np.array(["TN", "FN", "FP", "TP"])
    return codes[(predicted.long() * 2 + actual.long()).numpy()]


def error_gallery(images: torch.Tensor, probs: torch.Tensor, targets: torch.Tensor, task: str, output: int,
                  output_name: str, path: str | Path, per_outcome: int = 6) -> Path:
    """Save a PNG with rows of true/false positives/negatives for one output; errors shown most confident first."""
    kinds = outcomes(probs, targets, task, output)
    p = probs[:, output].numpy()
    fig, axes = plt.subplots(4, per_outcome, figsize=(2.2 * per_outcome, 6.4), squeeze=False)
    for row, kind in enumerate(("TP", "FP", "FN", "TN")):
        members = np.flatnonzero(kinds == kind)
        # Confident mistakes teach most: FP by highest, FN by lowest probability.
        members = members[np.argsort(-p[members] if kind in ("TP", "FP") else p[members])][:per_outcome]
        for col in range(per_outcome):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(members):
                ax.imshow(as_float(images[members[col]]).permute(1, 2, 0).numpy())
                ax.set_title(f"{kind} p={p[members[col]]:.2f}", fontsize=8)
        axes[row, 0].text(-0.1, 0.5, f"{kind}\n({(kinds == kind).sum()})", transform=axes[row, 0].transAxes,
                          ha="right", va="center")
    fig.suptitle(f"'{output_name}' on validation: true/false positives/negatives")
    return save_figure(fig, path)


def confusion_matrices(model: nn.Module, probs: torch.Tensor, targets: torch.Tensor) -> list[tuple[str, np.ndarray, list[str]]]:
    """Return (title, matrix, axis labels) per confusion matrix: one for binary/multiclass, one per label for multilabel."""
    if model.task == "multiclass":
        matrix = tmf.multiclass_confusion_matrix(probs, targets, len(model.class_names))
        return [(" / ".join(model.class_names), matrix.numpy(), model.class_names)]
    if model.task == "binary":
        return [(model.class_names[1], tmf.binary_confusion_matrix(probs[:, 0], targets.long()).numpy(),
                 model.class_names)]
    matrices = tmf.multilabel_confusion_matrix(probs, targets.long(), len(model.class_names))
    return [(name, m.numpy(), [f"no {name}", name]) for name, m in zip(model.class_names, matrices)]


def error_galleries(model: nn.Module, images: torch.Tensor, probs: torch.Tensor, targets: torch.Tensor,
                    folder: str | Path) -> list[Path]:
    """Save one error gallery per output of `model` (gallery_<output>.png) in `folder` from its `probs`; return the paths."""
    return [error_gallery(images, probs, targets, model.task, i, name, Path(folder) / f"gallery_{name}.png")
            for i, name in enumerate(model.output_names)]
