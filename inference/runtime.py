"""ONNX Runtime inference core: session options, providers, batched calibrated predictions.

Imports numpy, Pillow (via :mod:`inference.preprocess`) and onnxruntime only:
no Django, no torch. The Django layer selects :class:`OnnxClassifier` through
``CLASSIFIER = {"BACKEND": "classifier.onnx.OnnxClassifier", ...}`` and builds
one instance per model version; ``training evaluate`` builds one too, so the
promotion gate measures what is served. Everything here is safe to construct
before a fork because the ONNX Runtime session and the decode threads are
created on the first prediction, in the process that makes it.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from inference.modelformat import INPUT_NAME, MODEL_FILE, OUTPUT_NAME, UNKNOWN_OUTPUT, ModelError, load_model
from inference.preprocess import preprocess

if TYPE_CHECKING:
    import onnxruntime

logger = logging.getLogger(__name__)

ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")
DEVICES = ("auto", "cuda", "cpu")
DEFAULT_OPTIONS: dict[str, Any] = {
    "DEVICE": "auto",  # one of DEVICES
    # ONNX Runtime threads inside one run; 0 = 1 on CPU (the worker threads already run
    # one chunk per core, which costs less CPU than splitting each operator), ORT's default on CUDA.
    "INTRA_OP_THREADS": 0,
    "WORKERS": 0,  # threads that decode photos (and on CPU run the model on their chunk); 0 = one per CPU
    "MAX_BATCH": 0,  # most photos per ONNX Runtime run; 0 = 4 on CPU (cheapest per image there), 32 on CUDA
    "TOP_K": 3,  # classes returned per photo
}
CPU_MAX_BATCH, CUDA_MAX_BATCH = 4, 32

ImageSource = bytes | str | Path | Image.Image
_INHERITED_SESSIONS: list[Any] = []  # sessions a forked child inherited; kept, never destroyed


class RuntimeSetupError(RuntimeError):
    """ONNX Runtime is installed or configured wrongly (both wheels, or no CUDA for DEVICE 'cuda')."""


@dataclass(frozen=True)
class Prediction:
    """Top-k ``(class slug, calibrated probability)`` pairs, most probable first, and whether the photo
    is unlike every class the model was trained on (``unknown``; its score, None without open set)."""

    top_k: list[tuple[str, float]]
    model_version: str
    unknown: bool = False
    unknown_score: float | None = None


def check_single_runtime() -> None:
    """Raise :class:`RuntimeSetupError` when onnxruntime and onnxruntime-gpu are both installed."""
    installed = []
    for name in ORT_DISTRIBUTIONS:
        try:
            installed.append(f"{name}=={importlib_metadata.version(name)}")
        except importlib_metadata.PackageNotFoundError:
            pass
    if len(installed) > 1:
        raise RuntimeSetupError(
            f"both {' and '.join(installed)} are installed; they share the 'onnxruntime' module and "
            "break each other. Uninstall both, then install exactly one (the 'cpu' or the 'gpu' extra)."
        )


def _onnxruntime():
    check_single_runtime()
    import onnxruntime

    return onnxruntime


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class OnnxClassifier:
    """Pluggable classifier backend: one model version, batched ``predict``.

    ``options`` override :data:`DEFAULT_OPTIONS` (keys as in the Django
    ``CLASSIFIER`` setting). The model directory is validated here; the ONNX
    Runtime session and the worker threads are created on first use and
    re-created if the object is used in a forked child. Thread-safe.
    """

    def __init__(self, model_dir: str | Path, options: Mapping[str, Any] | None = None) -> None:
        unknown = set(options or {}) - set(DEFAULT_OPTIONS)
        if unknown:
            raise ValueError(f"unknown classifier option(s) {sorted(unknown)}; choose from {list(DEFAULT_OPTIONS)}")
        self.options = {**DEFAULT_OPTIONS, **(options or {})}
        if self.options["DEVICE"] not in DEVICES:
            raise ValueError(f"unknown DEVICE {self.options['DEVICE']!r}; choose {', '.join(DEVICES)}")
        self.model = load_model(model_dir)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._session: onnxruntime.InferenceSession | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._on_cpu, self._max_batch, self._workers = True, CPU_MAX_BATCH, 1  # set with the session
        self._no_logits = np.zeros((0, len(self.model.classes)), dtype=np.float32)
        self._no_output = np.zeros((0, len(self.model.classes) + 1), dtype=np.float32)

    @property
    def model_version(self) -> str:
        return self.model.version

    @property
    def providers(self) -> list[str]:
        """Execution providers the session really uses, best first (creates the session)."""
        return self.session.get_providers()

    @property
    def session(self) -> onnxruntime.InferenceSession:
        self._ensure_started()
        assert self._session is not None
        return self._session

    def predict(self, images: Sequence[ImageSource]) -> list[Prediction]:
        """Classify photos (encoded bytes, paths or PIL images); one :class:`Prediction` each, in order."""
        probabilities, scores = self.predict_scores(images)
        k = min(int(self.options["TOP_K"]), len(self.model.classes))
        threshold = self.model.unknown_threshold
        predictions = []
        for row, score in zip(probabilities, scores):
            best = np.argsort(-row, kind="stable")[:k]
            predictions.append(
                Prediction(
                    top_k=[(self.model.classes[i], float(row[i])) for i in best],
                    model_version=self.model.version,
                    unknown=threshold is not None and bool(score >= threshold),
                    unknown_score=None if threshold is None else float(score),
                )
            )
        return predictions

    def predict_proba(self, images: Sequence[ImageSource]) -> np.ndarray:
        """Calibrated probabilities, shape ``[len(images), n_classes]``, columns in ``model.classes`` order."""
        return self.predict_scores(images)[0]

    def predict_scores(self, images: Sequence[ImageSource]) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities and open-set scores (NaN for a model without them)."""
        logits, scores = self.predict_logits(images)
        return softmax(logits, self.model.temperature), scores

    def predict_logits(self, images: Sequence[ImageSource]) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits (before temperature) and open-set scores (NaN without them), decoded as served.

        On CPU each worker thread decodes a chunk of photos and runs the model on
        it (Pillow and ONNX Runtime release the GIL), so all cores stay busy with
        no hand-offs. On CUDA all workers decode, then the GPU gets large batches.
        """
        self._ensure_started()
        assert self._pool is not None
        if self._on_cpu:
            out = list(self._pool.map(self._decode_and_run, self._chunks(images)))
        else:
            arrays = list(self._pool.map(self.preprocess, images))
            out = [self._run_all(np.stack(chunk)) for chunk in self._chunks(arrays)]
        both = np.concatenate([self._no_output, *out])
        return both[:, :-1], both[:, -1]

    def preprocess(self, image: ImageSource) -> np.ndarray:
        """One photo -> the CHW float32 array the network takes (reduced-scale JPEG decode)."""
        return preprocess(image, self.model.spec, fast_decode=True)

    def run_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Raw logits for an already preprocessed ``[N, 3, S, S]`` float32 batch (chunks in parallel on CPU)."""
        self._ensure_started()
        assert self._pool is not None
        if not self._on_cpu:
            return np.concatenate([self._no_logits, *map(self._run, self._chunks(batch))])
        return np.concatenate([self._no_logits, *self._pool.map(self._run, self._chunks(batch))])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def _run_all(self, batch: np.ndarray) -> np.ndarray:
        """Logits with the open-set score as one more column (NaN without an open-set output)."""
        if self.model.unknown_threshold is None:
            logits = self._run(batch)
            return np.concatenate([logits, np.full((len(logits), 1), np.nan, np.float32)], axis=1)
        logits, scores = self.session.run([OUTPUT_NAME, UNKNOWN_OUTPUT], {INPUT_NAME: batch})
        return np.concatenate([logits, scores.reshape(-1, 1).astype(np.float32)], axis=1)

    def _decode_and_run(self, chunk: Sequence[ImageSource]) -> np.ndarray:
        return self._run_all(np.stack([self.preprocess(image) for image in chunk]))

    def _chunks(self, items: Sequence) -> list:
        """At most ``MAX_BATCH`` items each; on CPU also spread evenly over the workers."""
        size = self._max_batch
        if self._on_cpu:
            size = min(size, max(1, -(-len(items) // self._workers)))
        return [items[i : i + size] for i in range(0, len(items), size)]

    def _ensure_started(self) -> None:
        if self._session is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._session is not None and self._pid == os.getpid():
                return
            if self._session is not None:
                # Built before a fork: its thread pool does not exist in this child,
                # so it must never be destroyed here (its destructor would join them).
                _INHERITED_SESSIONS.append(self._session)
            self._session = self._create_session()
            self._on_cpu = self._session.get_providers()[0] == "CPUExecutionProvider"
            self._max_batch = int(self.options["MAX_BATCH"]) or (CPU_MAX_BATCH if self._on_cpu else CUDA_MAX_BATCH)
            self._workers = int(self.options["WORKERS"]) or len(os.sched_getaffinity(0))
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="classifier")
            self._pid = os.getpid()

    def _create_session(self) -> onnxruntime.InferenceSession:
        ort = _onnxruntime()
        device = self.options["DEVICE"]
        wanted = providers_for(device, ort.get_available_providers())
        opts = session_options(ort, providers=wanted, intra_op_threads=int(self.options["INTRA_OP_THREADS"]))
        try:
            session = ort.InferenceSession(self.model.onnx_bytes, sess_options=opts, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"ONNX Runtime cannot load {self.model.path / MODEL_FILE}: {exc}") from exc
        if self.model.unknown_threshold is not None and UNKNOWN_OUTPUT not in {o.name for o in session.get_outputs()}:
            raise ModelError(f"{self.model.path}: metadata has open_set but {MODEL_FILE} has no {UNKNOWN_OUTPUT} output")
        used = session.get_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in used:
            raise RuntimeSetupError("DEVICE is 'cuda' but ONNX Runtime fell back to CPU (no GPU or CUDA libraries?)")
        logger.info("classifier model %s uses providers %s (pid %d)", self.model.version, used, os.getpid())
        return session


def providers_for(device: str, available: Sequence[str]) -> list[str]:
    """The execution providers to ask for, best first, for a DEVICE option and what this onnxruntime has."""
    cuda_available = "CUDAExecutionProvider" in available
    if device == "cuda" and not cuda_available:
        raise RuntimeSetupError(
            "DEVICE is 'cuda' but this onnxruntime has no CUDAExecutionProvider; "
            "install the 'gpu' extra (onnxruntime-gpu) or use DEVICE 'auto' or 'cpu'"
        )
    if device != "cpu" and cuda_available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def device_providers(device: str) -> list[str]:
    """:func:`providers_for` a DEVICE option and the installed onnxruntime (which this imports)."""
    return providers_for(device, _onnxruntime().get_available_providers())


def session_options(ort: Any, *, providers: Sequence[str], intra_op_threads: int = 0) -> Any:
    """The served session's options: full graph optimisation, no spinning threads, and one
    intra-op thread on CPU (0 = ORT's default on CUDA) unless ``intra_op_threads`` says otherwise."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = intra_op_threads or (0 if providers[0] == "CUDAExecutionProvider" else 1)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts
