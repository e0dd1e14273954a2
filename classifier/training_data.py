"""From staff decisions and training examples to a training manifest, with a frozen holdout
stratified per source and label."""
from __future__ import annotations

import hashlib
import io
import json
import math
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from PIL import Image, ImageOps

from reports.models import Report

from .models import TrainingExample, TrainingSplit
from .routing import NO_ISSUE


def verified_reports() -> QuerySet[Report]:
    """Reports with a staff-verified label: a final category, or rejected as not an issue.
    Duplicates are left out: near-identical photos would leak across the holdout."""
    return (Report.objects.filter(Q(final_category__isnull=False, verified_at__isnull=False)
                                  | Q(status=Report.Status.REJECTED))
            .exclude(status=Report.Status.DUPLICATE)
            .select_related("final_category"))


def training_label(report: Report) -> str:
    return NO_ISSUE if report.status == Report.Status.REJECTED else report.final_category.slug


LOCAL = TrainingExample.Source.LOCAL.value  # every staff-verified report is the council's own photo


def training_examples() -> QuerySet[TrainingExample]:
    """Training examples, less any whose photo has since come in as a verified report
    (that report's label and source win; one photo twice could straddle the holdout)."""
    return TrainingExample.objects.exclude(photo_sha256__in=verified_reports().values("photo_sha256"))


def _order_key(kind: str, pk: int) -> str:
    """Stable pseudo-random order, so which items go to the holdout does not depend on arrival order."""
    return hashlib.sha256(f"holdout:{pk}".encode() if kind == "report" else f"holdout:example:{pk}".encode()).hexdigest()


def _items() -> list[tuple[str, int, str, str]]:
    """(kind, pk, source, label) of everything that trains: verified reports, then examples."""
    items = [("report", r.pk, LOCAL, training_label(r)) for r in verified_reports().order_by("pk")]
    items += [("example", pk, source, label)
              for pk, source, label in training_examples().order_by("pk").values_list("pk", "source", "label")]
    return items


def assign_splits() -> Counter:
    """Give every verified report and training example without a split one; existing
    assignments never move.

    Per stratum (source, label), items go to the holdout until it holds
    ceil(HOLDOUT_SHARE * n) of them, once the stratum has HOLDOUT_MIN_PER_LABEL
    items: so the holdout stays stratified as labels grow, and holds the
    council's own photos as soon as there are enough of a label. Returns the
    holdout count per (source, label).
    """
    share = settings.HOLDOUT_SHARE
    with transaction.atomic():
        TrainingSplit.objects.select_for_update().all().exists()  # serialise concurrent assigners
        strata: dict[tuple[str, str], list[tuple[str, int]]] = {}
        for kind, pk, source, label in _items():
            strata.setdefault((source, label), []).append((kind, pk))
        assigned = {("report", pk): split for pk, split in
                    TrainingSplit.objects.filter(report__isnull=False).values_list("report_id", "split")}
        assigned |= {("example", pk): split for pk, split in
                     TrainingSplit.objects.filter(example__isnull=False).values_list("example_id", "split")}
        holdout = Counter()
        new = []
        for stratum, group in strata.items():
            have = sum(1 for item in group if assigned.get(item) == TrainingSplit.Split.HOLDOUT)
            want = math.ceil(share * len(group)) if len(group) >= settings.HOLDOUT_MIN_PER_LABEL else 0
            for kind, pk in sorted((i for i in group if i not in assigned), key=lambda i: _order_key(*i)):
                split = TrainingSplit.Split.HOLDOUT if have < want else TrainingSplit.Split.TRAIN
                have += split == TrainingSplit.Split.HOLDOUT
                new.append(TrainingSplit(split=split, **{f"{kind}_id": pk}))
            holdout[stratum] = have
        TrainingSplit.objects.bulk_create(new)
    return holdout


def _per_class(counts: Counter, split: str, source: str | None = None) -> dict[str, int]:
    out: Counter = Counter()
    for (src, label, s), n in counts.items():
        if s == split and source in (None, src):
            out[label] += n
    return dict(sorted(out.items()))


METADATA_KEYS = {"exif", "xmp", "comment", "photoshop", "icc_profile"}  # Pillow's names in Image.info


def _export_photo(field, target: Path) -> None:
    """Write the stored photo to `target` as an oriented, metadata-free JPEG: copied as it is
    when it already is one (imported examples), re-encoded otherwise (report originals, and
    examples converted from the old import's reports)."""
    with field.storage.open(field.name) as f:
        data = f.read()
    img = Image.open(io.BytesIO(data))
    if img.format == "JPEG" and not METADATA_KEYS & set(img.info):
        target.write_bytes(data)
        return
    ImageOps.exif_transpose(img).convert("RGB").save(target, "JPEG", quality=95)


def export_training_set(out: Path) -> dict:
    """Write OUT/images/ (oriented, metadata-free JPEGs: <report id>.jpg for verified reports,
    example-<id>.jpg for training examples) and OUT/manifest.jsonl, one row per image:
    path, label, report_id, example_id, source (`local` for reports, the example's own
    otherwise) and split. Returns the summary also written to OUT/summary.json."""
    assign_splits()
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    report_splits = dict(TrainingSplit.objects.filter(report__isnull=False).values_list("report_id", "split"))
    example_splits = dict(TrainingSplit.objects.filter(example__isnull=False).values_list("example_id", "split"))
    rows, counts = [], Counter()
    for report in verified_reports().order_by("pk"):
        target = images / f"{report.pk}.jpg"
        if not target.exists():
            _export_photo(report.photo_original, target)
        rows.append({"path": f"images/{target.name}", "label": training_label(report), "report_id": report.pk,
                     "example_id": None, "source": LOCAL, "split": report_splits[report.pk]})
    for example in training_examples().order_by("pk"):
        target = images / f"example-{example.pk}.jpg"
        if not target.exists():
            _export_photo(example.photo, target)
        rows.append({"path": f"images/{target.name}", "label": example.label, "report_id": None,
                     "example_id": example.pk, "source": example.source, "split": example_splits[example.pk]})
    for row in rows:
        counts[(row["source"], row["label"], row["split"])] += 1
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sources = sorted({src for src, _, _ in counts})
    summary = {
        "n_images": len(rows),
        "train_per_class": _per_class(counts, "train"),
        "holdout_per_class": _per_class(counts, "holdout"),
        "per_source": {src: {"n_images": sum(n for (s, _, _), n in counts.items() if s == src),
                             "train_per_class": _per_class(counts, "train", src),
                             "holdout_per_class": _per_class(counts, "holdout", src)} for src in sources},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
