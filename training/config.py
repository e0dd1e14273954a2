"""The one training configuration; every field is also a ``train`` CLI flag."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

CROP_PCT = 0.875  # timm's centre-crop share for this model: resize_size = image_size / CROP_PCT


@dataclass
class TrainConfig:
    data: str = ""  # ImageFolder tree or .jsonl/.csv manifest (rows without a ``source`` are bootstrap photos)
    local: str = ""  # optional ImageFolder or manifest of the council's own verified photos (source ``local``)
    local_share: float = 0.5  # share of each class's training weight carried by its local photos, when the
    # class has local and bootstrap photos; 0 = every photo weighs the same (docs/TRAINING.md: local adaptation)
    feature_cache: str = ""  # folder of cached backbone features per photo, reused across runs; "" = none
    out: str = ""  # model directory to write (model.onnx, metadata.json, config.json, ...)
    seed: int = 0  # seeds the per-class sampling, validation split, augmentation and init
    split_seed: int = 0  # seeds the holdout split only, so every --seed shares one holdout
    holdout_per_class: int = 0  # images per class held out (never trained on) and evaluated at the end
    per_class: int | None = None  # labelled images per class to use (few-label runs); None = all
    val_fraction: float = 0.2  # share of each class held out of phase 2 to stop it early, judge it and calibrate it
    min_val_per_class: int = 20  # below this many images in any class, no val split and phase 2 is skipped
    # (nothing to stop it early on); phase 1 cross-validates on every image either way
    pretrained: bool = True  # start from ImageNet weights; --no-pretrained trains from scratch, same budget
    linear_probe: bool = False  # phase 1 on the eval crop only: a linear head on frozen features
    backbone: str = "lite0"  # lite0, lite1 or lite2 (training.model.BACKBONES); image_size stays as set (Lite1's
    # native side is 240, Lite2's 260: docs/BENCHMARKS.md "Larger backbones" measured each against Lite0)
    stage_features: bool = True  # the head also sees the last stage's pooled features (training.model.Lite0);
    # --linear-probe --no-stage-features is the textbook linear probe, the benchmark's baseline
    image_size: int = 288  # network input side, pixels: above the backbone's 224 pre-training (docs/TRAINING.md)
    resize_size: int = 329  # shorter side before the centre crop (288/329 = timm's crop_pct 0.875)
    interpolation: str = "bicubic"  # resize filter, as in timm's pretrained config for this model
    label_smoothing: float = 0.1  # cross-entropy label smoothing in phase 2 (phase 1 is plain logistic regression)
    head_l2: float = 1e-4  # phase 1: L2 penalty on the head weights (sum of squares) added to the mean loss, used
    # only when a class has a single image; otherwise cross-validation picks one of head.HEAD_L2_CHOICES
    cv_folds: int = 5  # phase 1: folds (at most the smallest class's image count) that choose the head's L2 and
    # fit its temperature on out-of-fold predictions, before the head is refitted on every labelled image
    head_max_iter: int = 300  # phase 1: L-BFGS iterations (it converges well before on a few thousand rows)
    cache_views: int = 4  # phase 1 feature views per image: the eval crop, its mirror image, then random augmentations
    epochs: int = 4  # phase 2 epochs (fine-tuning with gradual unfreezing)
    epoch_images: int = 160  # images per phase 2 epoch (class-balanced draw with replacement)
    lr: float = 1e-3  # phase 2 learning rate of the classifier; lower groups get lr / lr_decay**depth
    lr_decay: float = 2.6  # ratio between the LRs of adjacent layer groups (ULMFiT 2.6; timm decay 0.75 = 1.33)
    unfreeze_per_epoch: int = 2  # layer groups unfrozen per phase 2 epoch, from the top down
    weight_decay: float = 0.01  # AdamW weight decay, both phases
    batch_size: int = 32  # phase 2 batch size (phase 1 uses 4x)
    patience: int = 2  # phase 2 epochs without validation-loss improvement before stopping
    phase2_min_z: float = 2.0  # phase 2 is kept only if its calibrated val NLL beats phase 1's by this many
    # standard errors of the per-photo difference: a smaller gain is noise on a few hundred photos
    phase2: str = "auto"  # phase 2 fine-tuning: "on", "off", or "auto" = only on CUDA. On CPU its gate has rejected
    # it in every measured run while it took 150-440 s of a retrain (docs/TRAINING.md); "on" runs it anyway
    open_set: bool = True  # export an "unknown" score: distance to the k-th nearest training photo (training.openset)
    open_set_k: int = 1  # that k (1: the nearest; benchmarks/openset_bench.py compared 1 and 10)
    open_set_quantile: float = 0.95  # threshold = this quantile of held-out known photos' scores
    open_set_energy_quantile: float = 0.93  # also flag a photo whose energy (-logsumexp of its logits / T) is above
    # this quantile of held-out known photos' (training.openset); 0 = the distance alone
    threads: int = 0  # torch CPU threads; 0 = all cores
    device: str = "auto"  # auto, cpu or cuda (mixed precision on cuda)
    parent_version: str | None = None  # version this model was fine-tuned after (metadata)
    version: str | None = None  # model version string; None = generated

    def at_input_size(self, size: int) -> TrainConfig:
        """This config with network input side ``size``, resized before the crop at ``CROP_PCT``."""
        return replace(self, image_size=size, resize_size=round(size / CROP_PCT))

    def to_dict(self) -> dict:
        return asdict(self)
