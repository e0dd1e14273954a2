"""REST API v1 (DRF): create a report, read one, and a GeoJSON list for maps."""
from __future__ import annotations

import hashlib
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field,
                                   extend_schema_view)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.filters import BaseFilterBackend
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework_gis.serializers import GeoFeatureModelSerializer

from . import clusters, params, selectors, services, throttle
from .apikeys import api_key_check
from .models import Category, Report
from .text import printable


def exception_handler(exc, context):
    """Django ValidationErrors from services become 400s with per-field messages."""
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        first = next(iter(errors.values()))[0]
        return Response({"detail": first, "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" not in response.data:
        first = next(iter(response.data.values()), [""])
        response.data = {"detail": first[0] if isinstance(first, list) and first else str(first),
                         "errors": response.data}
    return response


class ErrorSerializer(serializers.Serializer):
    """Every error this API answers: the first message, then every message by field."""

    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


ERRORS = {code: OpenApiResponse(ErrorSerializer, description=why) for code, why in [
    (400, "Bad input: `detail` says what, `errors` by field. Nothing was stored."),
    (403, "The X-Api-Key is wrong or inactive."),
    (404, "No report with that reference."),
    (411, "The request had no Content-Length (a chunked upload)."),
    (413, "The upload is larger than the photo limit."),
    (429, "Too many requests from this client; try again later."),
]}


def request_api_key(request):
    """The ApiKey sent as X-Api-Key (limited per key), or None (anonymous: limited per IP).
    A wrong key is a 403 that still counts as an attempt from its IP."""
    raw = request.headers.get("X-Api-Key")
    if raw is None:
        return None
    key = api_key_check(raw)
    if key is None:
        throttle.submission_check(request)
        raise PermissionDenied(_("Invalid or inactive X-Api-Key."))
    return key


class PrintableCharField(serializers.CharField):
    """Text as stored, less the characters no feed may carry (reports.text)."""

    def to_representation(self, value):
        return printable(super().to_representation(value))


class ReportPublicSerializer(serializers.ModelSerializer):
    """Public fields only: no reporter contact details, no original photo, no model internals."""

    reference = serializers.CharField(source="service_request_id")
    status_label = serializers.CharField(source="get_status_display")
    category = serializers.SerializerMethodField()
    suggested_category = serializers.SerializerMethodField()
    latitude = serializers.SerializerMethodField()
    longitude = serializers.SerializerMethodField()
    photo_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    duplicate_of = serializers.SlugRelatedField(slug_field="service_request_id", read_only=True, allow_null=True)
    description = PrintableCharField(read_only=True)
    address = PrintableCharField(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = ["reference", "status", "status_label", "category", "suggested_category", "description",
                  "address", "latitude", "longitude", "photo_url", "thumbnail_url", "duplicate_of",
                  "created_at", "updated_at", "url"]

    def get_category(self, obj) -> str | None:
        cat = obj.final_category or obj.citizen_category
        return cat.slug if cat else None

    def get_suggested_category(self, obj) -> str | None:
        """Only what the thank-you page would say it might be: confident, a real category, not unknown."""
        suggestion = selectors.citizen_suggestion(obj)
        return suggestion.slug if suggestion else None

    def get_latitude(self, obj) -> float:
        return obj.location.y

    def get_longitude(self, obj) -> float:
        return obj.location.x

    def _abs(self, url: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    def get_photo_url(self, obj) -> str:
        return self._abs(obj.photo_public.url)

    def get_thumbnail_url(self, obj) -> str:
        return self._abs(obj.photo_thumbnail.url)

    def get_url(self, obj) -> str:
        return self._abs(f"/report/{obj.service_request_id}/")


def _limit(field: str) -> int:
    return Report._meta.get_field(field).max_length


@extend_schema_field(OpenApiTypes.BINARY)
class PhotoField(serializers.FileField):
    """A file part: `format: binary` in the schema, where drf-spectacular would say `uri`."""


class ReportCreateSerializer(serializers.Serializer):
    """The shape of the request; reports.services.report_create applies the same limits again
    (and the character rules), as it does for every channel."""

    photo = PhotoField(help_text="JPEG, PNG, WebP or HEIC; at most PHOTO_MAX_BYTES.")
    latitude = serializers.CharField(required=False, allow_blank=True, help_text="WGS84 degrees; omit to use the photo's GPS")
    longitude = serializers.CharField(required=False, allow_blank=True)
    category = serializers.SlugField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=_limit("description"))
    address = serializers.CharField(required=False, allow_blank=True, max_length=_limit("address"))
    name = serializers.CharField(required=False, allow_blank=True, max_length=_limit("reporter_name"))
    email = serializers.EmailField(required=False, allow_blank=True, max_length=_limit("reporter_email"))


class ReportCreatedSerializer(ReportPublicSerializer):
    """The create response: the report, and whether this photo had already been reported
    (then 200, the existing report, and the sender recorded as also reporting it)."""

    already_reported = serializers.SerializerMethodField()
    notice = serializers.SerializerMethodField()

    class Meta(ReportPublicSerializer.Meta):
        fields = [*ReportPublicSerializer.Meta.fields, "already_reported", "notice"]

    def get_already_reported(self, obj) -> bool:
        return not self.context["created"]

    def get_notice(self, obj) -> str:
        if self.context["created"]:
            return _("Thank you. Your report will be checked and passed to the right team.")
        return _("This photo was already reported as %(reference)s; we have noted that you reported it too.") % {
            "reference": obj.service_request_id}


API_FIELDS = {"reporter_name": "name", "reporter_email": "email"}  # report_create's error keys -> this API's


class ReportCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": ReportCreateSerializer},
                   responses={201: ReportCreatedSerializer, 200: ReportCreatedSerializer,
                              **{code: ERRORS[code] for code in (400, 403, 411, 413, 429)}})
    def post(self, request):
        key = request_api_key(request)
        throttle.submission_check(request, api_key=key)
        s = ReportCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        d = s.validated_data
        try:
            intake = services.report_create(
                photo=d["photo"].read(), latitude=d.get("latitude"), longitude=d.get("longitude"),
                category=d.get("category"), description=d.get("description", ""), address=d.get("address", ""),
                reporter_name=d.get("name", ""), reporter_email=d.get("email", ""), channel=Report.Channel.API,
            )
        except DjangoValidationError as exc:
            if not hasattr(exc, "error_dict"):
                raise
            raise DjangoValidationError({API_FIELDS.get(k, k): v for k, v in exc.error_dict.items()}) from None
        body = ReportCreatedSerializer(intake.report, context={"request": request, "created": intake.created}).data
        throttle.submission_accepted(request, api_key=key)
        return Response(body, status=status.HTTP_201_CREATED if intake.created else status.HTTP_200_OK)


@extend_schema_view(get=extend_schema(responses={200: ReportPublicSerializer, 404: ERRORS[404]}))
class ReportDetailView(generics.RetrieveAPIView):
    serializer_class = ReportPublicSerializer
    lookup_field = "service_request_id"
    lookup_url_kwarg = "reference"

    def get_queryset(self):
        return selectors.public_reports()


class ReportGeoSerializer(GeoFeatureModelSerializer):
    reference = serializers.CharField(source="service_request_id")
    category = serializers.SerializerMethodField()

    class Meta:
        model = Report
        geo_field = "location"
        fields = ["reference", "status", "category", "created_at"]

    def get_category(self, obj) -> str | None:
        return obj.public_category.slug if obj.public_category else None


class ReportFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Report.Status.choices)
    category = filters.CharFilter(method="filter_category",
                                  help_text="category slug, as each feature's category shows it (staff's, else "
                                            "the citizen's, else the model's suggestion)")

    class Meta:
        model = Report
        fields = ["status", "category"]

    def filter_category(self, queryset, name, value):
        return queryset.public_category_in(Category.objects.filter(slug=value))


class BBoxFilter(BaseFilterBackend):
    """`in_bbox`, parsed by reports.params (400 when bad) and compared as a web map draws it."""

    def filter_queryset(self, request, queryset, view):
        bbox = params.parse_bbox(request.query_params.get("in_bbox"), name="in_bbox")
        return queryset.filter(selectors.in_bbox(bbox)) if bbox else queryset


IN_BBOX = OpenApiParameter(
    "in_bbox", OpenApiTypes.STR, description=f"{params.BBOX_FORMAT} in WGS84 degrees, e.g. -0.2,51.4,0.0,51.6; "
                                             "any box within -180..180 / -90..90, the whole world included")


ZOOM = OpenApiParameter(
    "zoom", OpenApiTypes.INT, description=f"the map's zoom level (0..{clusters.MAX_ZOOM}), which sizes the clusters; "
                                          "omitted, they are sized from the box")
GEO_LIST = OpenApiResponse(ReportGeoSerializer(many=True), description=(
    "`clustered: false`: one feature per report. `clustered: true` (more than MAP_CLUSTER_THRESHOLD reports "
    "match): one feature per grid cell instead, with properties `cluster: true`, `count` (reports in it) and "
    "`bbox` (their extent; zoom to it); `count` at the top is the number of matching reports either way."))


@extend_schema_view(get=extend_schema(parameters=[IN_BBOX, ZOOM], responses={200: GEO_LIST, 400: ERRORS[400]}))
class ReportGeoListView(generics.ListAPIView):
    """GeoJSON FeatureCollection of the reports in `in_bbox=min_lon,min_lat,max_lon,max_lat`, or of grid
    clusters where that would be more than MAP_CLUSTER_THRESHOLD (reports.clusters)."""

    serializer_class = ReportGeoSerializer
    filter_backends = [BBoxFilter, filters.DjangoFilterBackend]
    filterset_class = ReportFilter
    pagination_class = None

    def get_queryset(self):
        return selectors.public_reports().order_by("-created_at")

    def list(self, request, *args, **kwargs):
        """Answers are cached for MAP_CACHE_SECONDS per query (the shared cache, so every replica):
        a city-wide map opened by many people at once costs one query, not one each."""
        key = "geojson:" + hashlib.sha256(urlencode(sorted(request.query_params.lists()), doseq=True).encode()).hexdigest()
        body = cache.get(key) if settings.MAP_CACHE_SECONDS else None
        if body is None:
            body = self._collection(request)  # bad parameters raise (400) before anything is cached
            if settings.MAP_CACHE_SECONDS:
                cache.set(key, body, settings.MAP_CACHE_SECONDS)
        return Response(body)

    def _collection(self, request) -> dict:
        zoom = clusters.parse_zoom(request.query_params.get("zoom"))
        queryset = self.filter_queryset(self.get_queryset())
        if clusters.too_many(queryset):
            bbox = params.parse_bbox(request.query_params.get("in_bbox"), name="in_bbox")
            return clusters.cluster_collection(queryset, bbox=bbox, zoom=zoom)
        features = self.features(queryset, limit=clusters.threshold())
        return {"type": "FeatureCollection", "clustered": False, "count": len(features), "features": features}

    @staticmethod
    def features(queryset, *, limit: int) -> list[dict]:
        """What ReportGeoSerializer would write, from plain columns: building a GEOS point and its
        GeoJSON per report costs more than the query itself at a thousand reports."""
        slugs = dict(Category.objects.values_list("pk", "slug"))
        when = serializers.DateTimeField()
        rows = (queryset.with_public_category()
                .annotate(lon=clusters.coordinate("ST_X"), lat=clusters.coordinate("ST_Y"))
                .values_list("service_request_id", "status", "public_category_id", "created_at", "lon", "lat")[:limit])
        return [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]},
                 "properties": {"reference": ref, "status": status, "category": slugs.get(category_id),
                                "created_at": when.to_representation(created)}}
                for ref, status, category_id, created, lon, lat in rows]
