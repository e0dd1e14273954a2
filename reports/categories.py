"""The default categories a new council starts with (editable in the admin afterwards), and the
one label that is not a category. No Django here: reports.routing imports it."""

# The label of a photo that shows no council issue: a rejected report's training label, and a
# class the model may predict. Never a Category.
NO_ISSUE = "no_issue"
NO_ISSUE_NAME = "Not a council issue"

DEFAULT_CATEGORIES = [
    # slug, name, group, description, keywords
    ("pothole", "Pothole", "Roads", "A hole or broken surface in a road, pavement or cycle lane.",
     ["road", "hole", "surface", "crater"]),
    ("graffiti", "Graffiti", "Street cleaning", "Painted or sprayed tags, murals or offensive graffiti on public property.",
     ["tag", "spray", "paint", "vandalism"]),
    ("fly_tipping", "Fly-tipping", "Street cleaning", "Rubbish, furniture or waste dumped illegally.",
     ["rubbish", "dumping", "waste", "litter", "mattress"]),
    ("streetlight", "Street light", "Street lighting", "A street light that is out, flickering, on in daytime or damaged.",
     ["lamp", "light", "dark", "column"]),
    ("damaged_sign", "Damaged sign", "Roads", "A road sign or street nameplate that is damaged, missing or obscured.",
     ["sign", "nameplate", "bollard"]),
    ("blocked_drain", "Blocked drain", "Drainage", "A gully or drain that is blocked or causing flooding.",
     ["drain", "gully", "flood", "water"]),
    ("overgrown_vegetation", "Overgrown vegetation", "Parks and trees", "Trees, hedges or weeds blocking a path, sign or sightline.",
     ["tree", "hedge", "weeds", "branches"]),
    ("other", "Something else", "Other", "Any other problem in a public place.", []),
]

# Welsh names and descriptions of the defaults (Category.name_cy / description_cy), by slug.
# review: "Tyfiant gormodol" and "llinell welediad" want a council translator's eye.
WELSH_CATEGORIES = {
    "pothole": ("Twll yn y ffordd", "Twll neu wyneb wedi torri mewn ffordd, palmant neu lôn feicio."),
    "graffiti": ("Graffiti", "Tagiau, murluniau neu graffiti sarhaus wedi'u paentio neu eu chwistrellu ar eiddo "
                             "cyhoeddus."),
    "fly_tipping": ("Tipio anghyfreithlon", "Sbwriel, dodrefn neu wastraff wedi'u dympio'n anghyfreithlon."),
    "streetlight": ("Golau stryd", "Golau stryd sydd wedi diffodd, yn fflachio, ymlaen yn ystod y dydd neu wedi'i "
                                   "ddifrodi."),
    "damaged_sign": ("Arwydd wedi'i ddifrodi", "Arwydd ffordd neu arwydd enw stryd sydd wedi'i ddifrodi, ar goll "
                                               "neu o'r golwg."),
    "blocked_drain": ("Draen wedi blocio", "Gwter neu ddraen sydd wedi blocio neu'n achosi llifogydd."),
    "overgrown_vegetation": ("Tyfiant gormodol", "Coed, gwrychoedd neu chwyn yn rhwystro llwybr, arwydd neu "
                                                 "linell welediad."),
    "other": ("Rhywbeth arall", "Unrhyw broblem arall mewn man cyhoeddus."),
}


def seed_welsh(Category) -> None:
    """Fill the Welsh name and description of the default categories where staff left them blank."""
    for slug, (name_cy, description_cy) in WELSH_CATEGORIES.items():
        Category.objects.filter(slug=slug, name_cy="").update(name_cy=name_cy)
        Category.objects.filter(slug=slug, description_cy="").update(description_cy=description_cy)


def seed_categories(Category) -> int:
    """Create missing default categories; never overwrite staff edits. Returns how many were created."""
    created = 0
    for order, (slug, name, group, description, keywords) in enumerate(DEFAULT_CATEGORIES):
        _, was_created = Category.objects.get_or_create(
            slug=slug,
            defaults={"name": name, "group": group, "description": description,
                      "keywords": keywords, "order": (order + 1) * 10},
        )
        created += was_created
    if any(f.name == "name_cy" for f in Category._meta.get_fields()):  # not yet in migration 0002's model
        seed_welsh(Category)
    return created
