"""From staff decisions and training examples to a training manifest, with a frozen holdout
stratified per source and label, and new classes only once they have the evidence
(MIN_PHOTOS_NEW_CLASS)."""
from __future__ import annotations

import hashlib
import io
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from PIL import Image, ImageOps

from reports.categories import NO_ISSUE
from reports.models import Report

from .models import ModelVersion, TrainingExample, TrainingSplit


def verified_reports() -> QuerySet[Report]:
    """Reports with a staff training label (`training_label`): Report.objects.staff_labelled()."""
    return Report.objects.staff_labelled().select_related("final_category")


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
    items = [("report", pk, LOCAL, label)
             for pk, label in verified_reports().order_by("pk").values_list("pk", "training_label")]
    items += [("example", pk, source, label)
              for pk, source, label in training_examples().order_by("pk").values_list("pk", "source", "label")]
    return items


TRAIN, HOLDOUT = TrainingSplit.Split.TRAIN.value, TrainingSplit.Split.HOLDOUT.value


def _split_plan() -> dict[tuple[str, str], list[tuple[str, int, str, bool]]]:
    """Per stratum (source, label), every item as (kind, pk, split, new): its assigned split,
    or (new=True) the one it gets if assigned now.

    Items go to the holdout until the stratum's holdout holds ceil(HOLDOUT_SHARE * n) of
    them, once the stratum has HOLDOUT_MIN_PER_LABEL items: so the holdout stays
    stratified as labels grow, and holds the council's own photos as soon as there are
    enough of a label. Existing assignments never move.
    """
    share = settings.HOLDOUT_SHARE
    strata: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for kind, pk, source, label in _items():
        strata.setdefault((source, label), []).append((kind, pk))
    assigned = {("report", pk): split for pk, split in
                TrainingSplit.objects.filter(report__isnull=False).values_list("report_id", "split")}
    assigned |= {("example", pk): split for pk, split in
                 TrainingSplit.objects.filter(example__isnull=False).values_list("example_id", "split")}
    plan = {}
    for stratum, group in strata.items():
        rows = [(kind, pk, assigned[(kind, pk)], False) for kind, pk in group if (kind, pk) in assigned]
        have = sum(1 for row in rows if row[2] == HOLDOUT)
        want = math.ceil(share * len(group)) if len(group) >= settings.HOLDOUT_MIN_PER_LABEL else 0
        for kind, pk in sorted((i for i in group if i not in assigned), key=lambda i: _order_key(*i)):
            split = HOLDOUT if have < want else TRAIN
            have += split == HOLDOUT
            rows.append((kind, pk, split, True))
        plan[stratum] = rows
    return plan


@dataclass(frozen=True)
class LabelPhotos:
    """A label's verified photos (reports + training examples, all sources), split as the
    frozen holdout has them or would assign them now."""
    label: str
    photos: int
    train: int  # outside the holdout
    holdout: int
    known: bool  # no_issue or a class of the active model: exempt from the new-class bar
    needed: int  # MIN_PHOTOS_NEW_CLASS: train photos a new class needs

    @property
    def exported(self) -> bool:
        """Trained on (and held out) at the next export."""
        return self.known or self.train >= self.needed


def known_labels() -> set[str]:
    """Labels exempt from the new-class bar: no_issue and the active model's classes, so an
    existing class never disappears from training."""
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).only("classes").first()
    return {NO_ISSUE, *(active.classes if active else [])}


def _label_photos(plan: dict[tuple[str, str], list[tuple[str, int, str, bool]]]) -> dict[str, LabelPhotos]:
    known, needed = known_labels(), settings.MIN_PHOTOS_NEW_CLASS
    splits: dict[str, Counter] = {}
    for (_, label), rows in plan.items():
        splits.setdefault(label, Counter()).update(split for _, _, split, _ in rows)
    return {label: LabelPhotos(label, sum(c.values()), c[TRAIN], c[HOLDOUT], label in known, needed)
            for label, c in sorted(splits.items())}


def label_photos() -> dict[str, LabelPhotos]:
    """Read-only: every label's verified photos as the next export would split them, and
    whether it is exported (the model panel's progress toward MIN_PHOTOS_NEW_CLASS)."""
    return _label_photos(_split_plan())


def _assign() -> tuple[Counter, dict[str, LabelPhotos]]:
    with transaction.atomic():
        TrainingSplit.objects.select_for_update().all().exists()  # serialise concurrent assigners
        plan = _split_plan()
        photos = _label_photos(plan)
        holdout, new = Counter(), []
        for (source, label), rows in plan.items():
            exported = photos[label].exported
            holdout[(source, label)] = sum(1 for _, _, split, is_new in rows
                                           if split == HOLDOUT and (exported or not is_new))
            if exported:
                new += [TrainingSplit(split=split, **{f"{kind}_id": pk}) for kind, pk, split, is_new in rows if is_new]
        TrainingSplit.objects.bulk_create(new)
    return holdout, photos


def assign_splits() -> Counter:
    """Give every verified report and training example without a split one (_split_plan says
    which); existing assignments never move. Returns the holdout count per (source, label).

    A label the active model does not know (a new class, not no_issue) gets no splits
    until it has MIN_PHOTOS_NEW_CLASS photos outside the holdout as it would be: below that
    it contributes nothing to train or holdout, so one mistaken staff label never becomes
    a class trained on one photo; once there, the holdout takes its share on top.
    """
    return _assign()[0]


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
    otherwise) and split. Labels below the new-class bar are left out and listed under
    `withheld` with their counts (assign_splits). Returns the summary also written to
    OUT/summary.json."""
    _, photos = _assign()
    exported = {label for label, p in photos.items() if p.exported}
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    report_splits = dict(TrainingSplit.objects.filter(report__isnull=False).values_list("report_id", "split"))
    example_splits = dict(TrainingSplit.objects.filter(example__isnull=False).values_list("example_id", "split"))
    rows, counts = [], Counter()
    for report in verified_reports().order_by("pk"):
        # No split: verified since the assignment above (the next export takes it).
        if report.training_label not in exported or report.pk not in report_splits:
            continue
        target = images / f"{report.pk}.jpg"
        if not target.exists():
            _export_photo(report.photo_original, target)
        rows.append({"path": f"images/{target.name}", "label": report.training_label, "report_id": report.pk,
                     "example_id": None, "source": LOCAL, "split": report_splits[report.pk]})
    for example in training_examples().order_by("pk"):
        if example.label not in exported or example.pk not in example_splits:
            continue
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
        "min_photos_new_class": settings.MIN_PHOTOS_NEW_CLASS,
        "withheld": {label: {"photos": p.photos, "train": p.train, "holdout": p.holdout, "needed": p.needed}
                     for label, p in photos.items() if not p.exported},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
