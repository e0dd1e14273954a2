from django import forms
from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from . import gazetteer
from .models import Category, Place, Report


class ReportForm(forms.Form):
    """The citizen form. Its limits are the model's; reports.services.report_create checks
    everything again (the one validation path every channel shares)."""

    photo = forms.FileField(
        label=_("Photo of the problem"),
        help_text=format_lazy(_("JPEG, PNG, WebP or HEIC, up to {} MB."), settings.PHOTO_MAX_BYTES // 1_000_000),
        widget=forms.ClearableFileInput(attrs={"accept": "image/*"}),
        error_messages={"required": _("Choose a photo of the problem.")},  # the error summary's link says which field
    )
    latitude = forms.CharField(required=False, widget=forms.HiddenInput)
    longitude = forms.CharField(required=False, widget=forms.HiddenInput)
    location_source = forms.ChoiceField(
        required=False,
        choices=[(c, c) for c in (Report.LocationSource.DEVICE_GPS, Report.LocationSource.MAP_PIN,
                                  Report.LocationSource.CLIENT, Report.LocationSource.SEARCH)],
        widget=forms.HiddenInput,
    )
    # The address search (reports.gazetteer): without JavaScript a GET re-renders the form with the
    # matches as radio buttons; with it, suggestions as you type. A chosen place is the location.
    place_query = forms.CharField(required=False, max_length=100, label=_("Street, place or postcode"))
    place = forms.ModelChoiceField(
        queryset=Place.objects.all(), required=False, widget=forms.RadioSelect,
        error_messages={"invalid_choice": _("The place you chose is no longer in our list. Please search again.")},
    )
    category = forms.ModelChoiceField(
        queryset=Category.objects.filter(active=True), required=False, to_field_name="slug",
        empty_label=_("Not sure — let us work it out"), label=_("What kind of problem is it? (optional)"),
    )
    description = forms.CharField(
        required=False, max_length=Report._meta.get_field("description").max_length,
        label=_("Anything else we should know? (optional)"),
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    email = forms.EmailField(
        required=False, max_length=Report._meta.get_field("reporter_email").max_length,
        label=_("Your email (optional, never shown publicly)"),
        help_text=_("We will only use it to tell you about this report."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].label_from_instance = lambda category: category.display_name
    def clean(self):
        """A chosen place gives the coordinates, unless the pin or the device gave newer ones (the
        script clears the choice when the pin moves), and its name becomes the address."""
        data = super().clean()
        place = data.get("place")
        if place is not None and (not data.get("latitude") or data.get("location_source") in ("", "search")):
            data["latitude"], data["longitude"] = f"{place.point.y:.6f}", f"{place.point.x:.6f}"
            data["location_source"] = Report.LocationSource.SEARCH
            data["address"] = gazetteer.place_label(place)
        return data


class CitizenLabelForm(forms.Form):
    """The thank-you page's "Is that right?" answer. The token is checked by the view
    (a bad one is a 403, not a form error); an inactive category is refused by the service."""

    token = forms.CharField(required=False, max_length=300)
    category = forms.CharField(max_length=64, error_messages={"required": _("Choose a category.")})

    def clean_category(self) -> Category:
        slug = self.cleaned_data["category"].strip()
        found = Category.objects.filter(slug=slug).first()
        if found is None:
            raise forms.ValidationError(_("Unknown category %(slug)r.") % {"slug": slug[:64]})
        return found
