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
    return created
