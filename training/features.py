"""What the recipe feeds the network: decoded images, batched forward passes, phase 1's feature views and their cache.

:class:`Encoder` runs a model over :class:`Images` a batch at a time; its
feature views (the eval crop, its mirror image, then seeded random
augmentations) are what phase 1's head is fitted on, read from and written
to a :class:`FeatureCache` when the config names one. Benchmarks that fit
heads on the recipe's features go through the same class.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from inference.preprocess import PreprocessSpec, to_array
from training import data
from training.config import TrainConfig
from training.model import architecture, weights_sha256

log = logging.getLogger("training")


def spec_for(config: TrainConfig) -> PreprocessSpec:
    return PreprocessSpec(input_size=config.image_size, resize_size=config.resize_size, interpolation=config.interpolation)


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class Images:
    """Training/validation images: labels, sources and SHA-256 at once; the decoded pixels (kept 8-bit: the
    serving transform's centre crops, made into network input a batch at a time, and small copies for
    augmentation) only when first needed, so a run whose features are all cached decodes nothing."""

    def __init__(self, samples: Sequence[data.Sample], spec: PreprocessSpec, classes: list[str], desc: str):
        self.samples, self.spec, self.desc = list(samples), spec, desc
        self.labels = np.array([classes.index(s.label) for s in samples], dtype=np.int64)
        self.local = np.array([s.source == "local" for s in samples], dtype=bool)
        self._decoded: dict[int, tuple[Image.Image, Image.Image]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    @functools.cached_property
    def sha256(self) -> list[str]:
        return [hashlib.sha256(Path(s.path).read_bytes()).hexdigest() for s in self.samples]

    def decoded(self, idx: Sequence[int] | slice) -> list[tuple[Image.Image, Image.Image]]:
        """(centre crop, small copy) of the images ``idx``, each photo decoded once, when first asked for:
        a retrain whose features are cached but for a few new photos decodes only those."""
        idx = range(len(self.samples))[idx] if isinstance(idx, slice) else idx
        missing = [i for i in dict.fromkeys(idx) if i not in self._decoded]
        if missing:
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                loaded = pool.map(lambda i: data.load_for_training(self.samples[i].path, self.spec), missing)
                for i, pair in zip(missing, tqdm(loaded, total=len(missing), desc=f"decode {self.desc}", leave=False)):
                    self._decoded[i] = pair
        return [self._decoded[i] for i in idx]

    def small(self, idx: Sequence[int]) -> list[Image.Image]:
        """The copies shrunk to ``resize_size`` that augmentation starts from."""
        return [img for _, img in self.decoded(idx)]

    def eval_arrays(self, idx: Sequence[int] | slice) -> np.ndarray:
        """Network input for the images ``idx``: exactly what serving feeds the model."""
        return np.stack([to_array(crop, self.spec) for crop, _ in self.decoded(idx)])


class FeatureCache:
    """Pooled backbone features per photo and view, one ``.npy`` each under ``root``, reused across runs.

    The key is the photo's SHA-256, the view, and ``model_key`` (architecture, feature levels, the
    ImageNet weights' SHA-256, preprocessing, augmentation and, for augmented views, the seed), so a
    nightly retrain encodes only photos it has not seen, and a new backbone or new weights miss.
    """

    def __init__(self, root: Path, model_key: str):
        self.root, self.model_key = Path(root), model_key

    def _path(self, sha256: str, view: str) -> Path:
        key = hashlib.sha256(f"{self.model_key}|{view}|{sha256}".encode()).hexdigest()
        return self.root / key[:2] / f"{key}.npy"

    def get(self, sha256: str, view: str) -> np.ndarray | None:
        try:
            return np.load(self._path(sha256, view))
        except (FileNotFoundError, ValueError, OSError):  # missing, or half-written by a killed run
            return None

    def put(self, sha256: str, view: str, features: np.ndarray) -> None:
        path = self._path(sha256, view)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            np.save(f, features)
        tmp.replace(path)  # atomic: a reader sees the whole file or none


class Encoder:
    """A model's forward passes over :class:`Images` on ``device`` (bfloat16 autocast on CUDA), and phase 1's
    feature views of them through the config's feature cache, if it names one."""

    def __init__(self, config: TrainConfig, device: torch.device):
        self.config, self.device = config, device
        self.spec = spec_for(config)
        self.augment = data.Augment()
        self.amp = device.type == "cuda"
        self.cache = None
        if config.feature_cache and config.pretrained:  # random weights give features worth nothing next run
            model_key = json.dumps({"architecture": architecture(config.backbone),
                                    "stage_features": config.stage_features,
                                    "weights": weights_sha256(config.backbone), "preprocess": self.spec.to_dict(),
                                    "augment": repr(self.augment), "dtype": "bf16" if self.amp else "fp32"})
            self.cache = FeatureCache(Path(config.feature_cache), model_key)

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    @torch.no_grad()
    def forward_batches(self, fn, n: int, batch: Callable[[slice], np.ndarray], desc: str) -> torch.Tensor:
        """``fn`` over ``batch(sl)`` for consecutive slices of ``range(n)``, concatenated on the CPU.

        Batches are made as they are needed, not held whole, which keeps
        phase 1's peak memory well below holding every view's input at once.
        """
        out = []
        for sl in tqdm(list(batches(n, self.config.batch_size * 2)), desc=desc, leave=False):
            with self.autocast():
                out.append(fn(torch.from_numpy(batch(sl)).to(self.device)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def logits(self, model: nn.Module, images: Images) -> torch.Tensor:
        """The model's logits for the eval crops of ``images``."""
        return self.forward_batches(model, len(images.labels), images.eval_arrays, "logits")

    def eval_features(self, model: nn.Module, images: Images) -> torch.Tensor:
        """The model's pooled features ``[N, D]`` for the eval crops of ``images`` (no cache: any backbone)."""
        return self.forward_batches(model.features, len(images), images.eval_arrays, "open-set bank")

    def view_arrays(self, images: Images, v: int, idx: Sequence[int]) -> np.ndarray:
        """Network input of view ``v`` for the images ``idx``: the eval crop, its mirror image (the
        augmentation that never loses the subject), then random augmentations, seeded per photo and
        view so that a cached view equals a recomputed one."""
        if v == 0:
            return images.eval_arrays(idx)
        if v == 1:
            return np.ascontiguousarray(images.eval_arrays(idx)[..., ::-1])
        return np.stack([self.augment(img, self.spec,
                                      np.random.default_rng([self.config.seed, v, int(images.sha256[i][:15], 16)]))
                         for i, img in zip(idx, images.small(idx))])

    def feature_views(self, model: nn.Module, images: Images, n_views: int) -> torch.Tensor:
        """``[n_views, N, D]`` features of :meth:`view_arrays`, from the feature cache where it has them."""
        views = []
        for v in range(n_views):
            name = f"view{v}" if v < 2 else f"view{v}-seed{self.config.seed}"
            cached = [self.cache.get(h, name) for h in images.sha256] if self.cache else [None] * len(images)
            todo = [i for i, f in enumerate(cached) if f is None]
            if todo:
                fresh = self.forward_batches(model.features, len(todo),
                                             lambda sl: self.view_arrays(images, v, todo[sl]),
                                             f"features {v + 1}/{n_views}").numpy()
                for i, f in zip(todo, fresh):
                    cached[i] = f
                    if self.cache:
                        self.cache.put(images.sha256[i], name, f)
            if self.cache:
                log.info("features view %d: %d of %d photos from the cache", v, len(images) - len(todo), len(images))
            views.append(torch.from_numpy(np.stack(cached)) if len(images) else torch.zeros(0))
        return torch.stack(views).to(self.device)
