"""Concept vocabulary of the synthetic world, in Broden categories.

Concept ids are global, dense and start at 1 (0 means "no label"); every
concept belongs to exactly one category. Label names are unique across the
vocabulary: following Broden, colour names carry a ``-c`` suffix and scene
names a ``-s`` suffix (``red-c``, ``street-s``); other names are plain.
Code refers to concepts by (category, plain name), see :func:`concept_id`.
"""

from dataclasses import dataclass

PIXEL_CATEGORIES = ("color", "object", "part", "material")
IMAGE_CATEGORIES = ("scene", "texture")
CATEGORIES = PIXEL_CATEGORIES + IMAGE_CATEGORIES

# Base fill colour of every colour concept (rendering jitters around it).
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (200, 35, 35),
    "orange": (240, 140, 25),
    "yellow": (240, 220, 45),
    "green": (45, 150, 50),
    "blue": (45, 95, 210),
    "purple": (125, 55, 165),
    "pink": (240, 150, 190),
    "brown": (120, 75, 35),
    "white": (240, 240, 235),
    "gray": (128, 128, 128),
    "black": (25, 25, 28),
}

SCENES = ("street", "park", "lake", "forest", "room", "mountain")

OBJECTS = (
    "sky",
    "cloud",
    "sun",
    "mountain",
    "water",
    "grass",
    "road",
    "building",
    "car",
    "tree",
    "person",
    "boat",
    "bench",
    "flower",
    "rock",
    "wall",
    "floor",
    "window",
    "door",
    "bed",
    "table",
    "lamp",
    "rug",
)

# Every part, mapped to the object it belongs to.
PARTS: dict[str, str] = {
    "roof": "building",
    "facade": "building",
    "house-window": "building",
    "house-door": "building",
    "awning": "building",
    "car-body": "car",
    "car-window": "car",
    "wheel": "car",
    "trunk": "tree",
    "crown": "tree",
    "hull": "boat",
    "sail": "boat",
    "mast": "boat",
    "head": "person",
    "torso": "person",
    "legs": "person",
    "headboard": "bed",
    "blanket": "bed",
    "pillow": "bed",
    "tabletop": "table",
    "table-leg": "table",
    "lampshade": "lamp",
    "lamp-post": "lamp",
    "pane": "window",
    "window-frame": "window",
    "lane-marking": "road",
    "snowcap": "mountain",
}

MATERIALS = (
    "asphalt",
    "brick",
    "concrete",
    "fabric",
    "foliage",
    "glass",
    "liquid",
    "metal",
    "plaster",
    "rubber",
    "skin",
    "snow",
    "stone",
    "tile",
    "wood",
)

TEXTURES = ("striped", "dotted", "chequered", "zigzagged", "bricked", "wavy")

_SUFFIX = {"color": "-c", "scene": "-s"}
_PLAIN_NAMES: dict[str, tuple[str, ...]] = {
    "color": tuple(PALETTE),
    "object": OBJECTS,
    "part": tuple(PARTS),
    "material": MATERIALS,
    "scene": SCENES,
    "texture": TEXTURES,
}


@dataclass(frozen=True)
class Concept:
    """One labelled concept.

    Attributes:
        id: global concept id (>= 1).
        name: plain name, unique within its category (e.g. ``red``).
        category: Broden category.
    """

    id: int
    name: str
    category: str

    @property
    def label(self) -> str:
        """Label name, unique across the vocabulary (e.g. ``red-c``)."""
        return self.name + _SUFFIX.get(self.category, "")


def _build() -> tuple[Concept, ...]:
    """Assign dense global ids, category by category.

    Returns:
        All concepts, ordered by id.
    """
    names = [(cat, name) for cat in CATEGORIES for name in _PLAIN_NAMES[cat]]
    concepts = tuple(Concept(i, name, cat) for i, (cat, name) in enumerate(names, 1))
    labels = [c.label for c in concepts]
    assert len(set(labels)) == len(labels), "label names must be unique"
    return concepts


CONCEPTS = _build()
_IDS = {(c.category, c.name): c.id for c in CONCEPTS}


def concept_id(category: str, name: str) -> int:
    """Global id of a concept.

    Args:
        category: Broden category, e.g. ``"object"``.
        name: plain concept name, e.g. ``"car"``.

    Returns:
        The concept's global id.
    """
    return _IDS[(category, name)]


def category_concepts(category: str) -> tuple[Concept, ...]:
    """Concepts of one category, ordered by id.

    Args:
        category: Broden category.

    Returns:
        The category's concepts.
    """
    return tuple(c for c in CONCEPTS if c.category == category)


def concept_table() -> list[tuple[int, str, str]]:
    """The whole vocabulary as (id, label name, category) rows, ordered by id.

    Returns:
        One row per concept.
    """
    return [(c.id, c.label, c.category) for c in CONCEPTS]
