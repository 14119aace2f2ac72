"""Procedural, deterministic rendering of one labelled synthetic scene.

An image is a function of ``(seed, index)`` only: :func:`render_sample` seeds
its own generator from them, so any image can be regenerated alone. Each scene
class has its own composition rules; the scene is decided by which objects are
present, while colours, counts, sizes, positions and lighting vary.
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from .vocabulary import PALETTE, PIXEL_CATEGORIES, SCENES, concept_id

MIN_TEXTURE_FRACTION = 0.10
"""A textured surface gives the image its texture label from this fraction on."""

_SCENE_BLOCK_TAG = 7919
"""Seed word that keeps the scene-order generator apart from image generators."""


@dataclass(frozen=True)
class Sample:
    """One rendered image and its labels.

    Attributes:
        image: RGB image, uint8, shape (size, size, 3).
        planes: pixel category -> uint16 label plane of shape
            (size // 2, size // 2) holding global concept ids (0 = none).
        scene: scene concept id.
        texture: texture concept id, or 0 when no large textured surface.
    """

    image: np.ndarray
    planes: dict[str, np.ndarray]
    scene: int
    texture: int


@dataclass(frozen=True)
class Look:
    """Appearance of a surface.

    Attributes:
        color: colour name of the fill.
        material: material name, or None for no material label.
        texture: texture name, or None for a plain fill.
        accent: colour name of the texture's pattern (needed with a texture).
    """

    color: str
    material: str | None = None
    texture: str | None = None
    accent: str | None = None


class Canvas:
    """Full-resolution RGB image plus one label plane per pixel category.

    Shapes are boolean masks in normalised coordinates (x to the right, y
    downwards, both in [0, 1]); painting a mask writes colour and labels of
    its pixels over whatever was there (painter's algorithm).
    """

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        """Create a blank canvas.

        Args:
            size: width and height in pixels.
            rng: source of all randomness of this image.
        """
        self.rng = rng
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.y = coords[:, None]
        self.x = coords[None, :]
        self.pixel = 1.0 / size
        self.rgb = np.zeros((size, size, 3), np.float32)
        self.labels = {cat: np.zeros((size, size), np.uint16) for cat in PIXEL_CATEGORIES}
        self.surface = np.zeros((size, size), np.int32)
        self.surface_textures = [0]

    def rect(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Axis-aligned rectangle [x0, x1) x [y0, y1)."""
        return (self.x >= x0) & (self.x < x1) & (self.y >= y0) & (self.y < y1)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        """Filled axis-aligned ellipse."""
        return ((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2 <= 1.0

    def polygon(self, points: list[tuple[float, float]]) -> np.ndarray:
        """Filled convex polygon, vertices in either winding order."""
        crosses = np.broadcast_arrays(
            *[
                (x1 - x0) * (self.y - y0) - (y1 - y0) * (self.x - x0)
                for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1])
            ]
        )
        return np.all(np.greater_equal(crosses, 0), axis=0) | np.all(np.less_equal(crosses, 0), axis=0)

    def discs(self, cx: np.ndarray, cy: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Union of filled circles given as arrays of centres and radii."""
        d2 = (self.x[..., None] - cx) ** 2 + (self.y[..., None] - cy) ** 2
        return np.any(d2 <= r**2, axis=-1)

    def pattern(self, texture: str, angle: float | None = None) -> np.ndarray:
        """Accent mask of a procedural texture over the whole canvas.

        Args:
            texture: texture name.
            angle: stripe direction in degrees (random when None).

        Returns:
            Boolean mask, True where the accent colour shows.
        """
        rng = self.rng
        if angle is None:
            angle = float(rng.choice([0.0, 45.0, 90.0, 135.0]))
        period = rng.uniform(0.075, 0.13)
        a = np.deg2rad(angle)
        u = self.x * np.cos(a) + self.y * np.sin(a)
        v = self.y * np.cos(a) - self.x * np.sin(a)
        phase = rng.random(2)
        if texture == "striped":
            return np.mod(u / period + phase[0], 1.0) < 0.5
        if texture == "dotted":
            du = np.mod(u / period + phase[0], 1.0) - 0.5
            dv = np.mod(v / period + phase[1], 1.0) - 0.5
            return du**2 + dv**2 < rng.uniform(0.07, 0.11)
        if texture == "chequered":
            cells = np.floor(self.x / period + phase[0]) + np.floor(self.y / period + phase[1])
            return np.mod(cells, 2) == 0
        if texture == "zigzagged":
            tooth = 2.0 * np.abs(np.mod(v / (1.6 * period), 1.0) - 0.5)
            return np.mod((u + 0.6 * period * tooth) / period + phase[0], 1.0) < 0.5
        if texture == "wavy":
            wave = np.sin(2 * np.pi * (v / (2.5 * period) + phase[1]))
            return np.mod((u + 0.35 * period * wave) / period + phase[0], 1.0) < 0.33
        if texture == "bricked":
            return self._mortar(rng.uniform(0.045, 0.07))
        raise ValueError(f"unknown texture {texture!r}")

    def _mortar(self, height: float) -> np.ndarray:
        """Mortar lines of a running-bond brick wall with rows of a height."""
        width = 2.2 * height
        shift = 0.5 * width * np.mod(np.floor(self.y / height), 2)
        horizontal = np.mod(self.y, height) < self.pixel
        vertical = np.mod(self.x + shift, width) < self.pixel
        return horizontal | vertical

    def paint(
        self,
        mask: np.ndarray,
        obj: str,
        part: str | None,
        look: Look,
        shade: float | None = None,
        angle: float | None = None,
    ) -> None:
        """Fill a mask with a look and write its labels.

        Args:
            mask: pixels to paint (broadcastable to the canvas).
            obj: object name.
            part: part name, or None for no part label.
            look: colour, material and texture of the surface.
            shade: vertical lighting gradient (small random value when None).
            angle: stripe direction passed to :meth:`pattern`.
        """
        mask = np.broadcast_to(mask, self.surface.shape)
        if not mask.any():
            return
        self._fill(mask, look.color, shade)
        self.labels["color"][mask] = concept_id("color", look.color)
        self.labels["object"][mask] = concept_id("object", obj)
        self.labels["part"][mask] = concept_id("part", part) if part else 0
        self.labels["material"][mask] = concept_id("material", look.material) if look.material else 0
        if look.texture is None:
            self.surface[mask] = 0
            return
        accent = mask & self.pattern(look.texture, angle)
        self._fill(accent, look.accent, shade)
        self.labels["color"][accent] = concept_id("color", look.accent)
        self.surface[mask] = len(self.surface_textures)
        self.surface_textures.append(concept_id("texture", look.texture))

    def _fill(self, mask: np.ndarray, color: str, shade: float | None) -> None:
        """Write a jittered colour under a linear lighting gradient."""
        rng = self.rng
        if shade is None:
            shade = rng.uniform(-0.15, 0.15)
        tone = np.asarray(PALETTE[color], np.float32) + rng.normal(0, 9, 3).astype(np.float32)
        light = 1.0 + shade * (self.y - 0.5) + rng.uniform(-0.08, 0.08) * (self.x - 0.5)
        self.rgb[mask] = (light[..., None] * tone)[mask]

    def texture(self) -> int:
        """Texture id of the largest textured surface if large enough, else 0."""
        areas = np.bincount(self.surface.ravel(), minlength=len(self.surface_textures))
        areas[0] = 0
        largest = int(areas.argmax())
        if areas[largest] < MIN_TEXTURE_FRACTION * self.surface.size:
            return 0
        return self.surface_textures[largest]

    def image(self) -> np.ndarray:
        """Final uint8 image with global lighting jitter and pixel noise."""
        rng = self.rng
        gain = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
        noise = rng.normal(0.0, rng.uniform(2.0, 6.0), self.rgb.shape).astype(np.float32)
        return np.clip(self.rgb * gain + noise, 0, 255).round().astype(np.uint8)

    def planes(self) -> dict[str, np.ndarray]:
        """Label planes at half resolution (every second pixel)."""
        return {cat: plane[::2, ::2].copy() for cat, plane in self.labels.items()}


# Colour choices ---------------------------------------------------------------

Choice = tuple[tuple[str, ...], tuple[float, ...] | None]

SKY: Choice = (("blue", "gray", "orange", "pink"), (0.72, 0.14, 0.09, 0.05))
GRASS: Choice = (("green", "yellow", "brown"), (0.78, 0.14, 0.08))
WATER: Choice = (("blue", "gray"), (0.82, 0.18))
LEAVES: Choice = (("green",), None)
AUTUMN: Choice = (("orange", "yellow", "red", "brown"), None)
BARK: Choice = (("brown", "black", "gray", "white"), (0.7, 0.12, 0.12, 0.06))
VIVID: Choice = (("red", "blue", "white", "black", "yellow", "gray", "green", "orange", "purple"), None)
CLOTH: Choice = (tuple(PALETTE), None)
WALLS: Choice = (("white", "yellow", "pink", "gray", "green", "blue", "orange", "purple"), None)
WOODS: Choice = (("brown", "orange", "yellow", "black", "white"), (0.5, 0.15, 0.1, 0.1, 0.15))
PATTERNS = ("striped", "dotted", "chequered", "zigzagged")


def _pick(rng: np.random.Generator, choice: Choice) -> str:
    """Draw one name from (names, probabilities or None for uniform)."""
    names, weights = choice
    return names[rng.choice(len(names), p=weights)]


def _accent(rng: np.random.Generator, base: str, names: tuple[str, ...] = tuple(PALETTE)) -> str:
    """Draw an accent colour different from the base colour."""
    return _pick(rng, (tuple(n for n in names if n != base), None))


def _textured(rng: np.random.Generator, color: str, material: str, texture: str) -> Look:
    """A look with a texture whose accent contrasts with the fill."""
    return Look(color, material, texture, _accent(rng, color))


def _maybe_patterned(
    rng: np.random.Generator, color: str, material: str, p: float, textures: tuple[str, ...] = PATTERNS
) -> Look:
    """A plain look, or with probability p a look with a random pattern."""
    if rng.random() >= p:
        return Look(color, material)
    return _textured(rng, color, material, textures[rng.integers(len(textures))])


def _thick(c: Canvas, width: float) -> float:
    """A width of at least one and a half pixels."""
    return max(width, 1.5 * c.pixel)


def _draw_in_depth(items: list[tuple[float, Callable[[], None]]]) -> None:
    """Draw (ground line y, draw function) items from far (small y) to near."""
    for _, draw in sorted(items, key=lambda item: item[0]):
        draw()


# Nature -------------------------------------------------------------------------


def _sky(c: Canvas, bottom: float) -> None:
    """Sky above a horizon, lighter towards the horizon."""
    c.paint(c.rect(0, 0, 1, bottom), "sky", None, Look(_pick(c.rng, SKY)), shade=0.35)


def _sun(c: Canvas, horizon: float) -> None:
    """A sun disc somewhere in the sky."""
    rng = c.rng
    r = rng.uniform(0.045, 0.08)
    cy = rng.uniform(r, max(r, horizon - 2 * r))
    color = _pick(rng, (("yellow", "orange", "white"), (0.6, 0.25, 0.15)))
    c.paint(c.ellipse(rng.uniform(0.08, 0.92), cy, r, r), "sun", None, Look(color))


def _cloud(c: Canvas, horizon: float) -> None:
    """A cloud made of three overlapping ellipses."""
    rng = c.rng
    w = rng.uniform(0.1, 0.2)
    cx, cy = rng.uniform(0.0, 1.0), rng.uniform(0.06, max(0.07, 0.65 * horizon))
    centres = cx + w * np.array([-0.6, 0.0, 0.6])
    mask = np.zeros(c.surface.shape, bool)
    for x, scale in zip(centres, (0.6, 1.0, 0.7)):
        mask |= c.ellipse(x, cy - 0.03 * scale, w * 0.6 * scale, w * 0.35 * scale)
    color = _pick(rng, (("white", "gray"), (0.75, 0.25)))
    c.paint(mask, "cloud", None, Look(color), shade=0.1)


def _weather(c: Canvas, horizon: float, sun_p: float, max_clouds: int) -> None:
    """Optional sun and some clouds."""
    if c.rng.random() < sun_p:
        _sun(c, horizon)
    for _ in range(c.rng.integers(0, max_clouds + 1)):
        _cloud(c, horizon)


def _mountain(c: Canvas, base: float, snow_p: float) -> None:
    """A triangular mountain standing on a base line, maybe snow-capped."""
    rng = c.rng
    px, py = rng.uniform(0.05, 0.95), rng.uniform(0.06, base - 0.18)
    half = rng.uniform(0.25, 0.55)
    mask = c.polygon([(px - half, base + 0.01), (px, py), (px + half, base + 0.01)])
    color = _pick(rng, (("gray", "brown", "purple", "blue"), (0.45, 0.3, 0.15, 0.1)))
    c.paint(mask, "mountain", None, Look(color, "stone"))
    if rng.random() < snow_p:
        line = py + rng.uniform(0.2, 0.45) * (base - py)
        jag = 0.025 * np.sin(c.x * rng.uniform(40, 80) + rng.uniform(0, 6.3))
        c.paint(mask & (c.y < line + jag), "mountain", "snowcap", Look("white", "snow"))


def _ground(c: Canvas, obj: str, top: float, colors: Choice, material: str) -> None:
    """A ground surface from a line down to the bottom."""
    c.paint(c.rect(0, top, 1, 1.01), obj, None, Look(_pick(c.rng, colors), material))


def _water(c: Canvas, top: float, bottom: float) -> None:
    """A water surface, often with wavy foam lines."""
    rng = c.rng
    color = _pick(rng, WATER)
    look = Look(color, "liquid")
    if rng.random() < 0.55:
        foam = _pick(rng, (("white", "gray" if color == "blue" else "blue"), None))
        look = Look(color, "liquid", "wavy", foam)
    c.paint(c.rect(0, top, 1, bottom), "water", None, look, shade=0.2, angle=90.0)


def _tree(c: Canvas, x: float, bottom: float, height: float, leaves: Choice, conifer: bool) -> None:
    """A tree: trunk plus a round or conical crown."""
    rng = c.rng
    trunk_w = _thick(c, height * rng.uniform(0.07, 0.11))
    trunk_top = bottom - height * (0.3 if conifer else 0.5)
    c.paint(
        c.rect(x - trunk_w / 2, trunk_top, x + trunk_w / 2, bottom), "tree", "trunk", Look(_pick(rng, BARK), "wood")
    )
    if conifer:
        half = height * rng.uniform(0.22, 0.32)
        crown = c.polygon([(x - half, bottom - 0.2 * height), (x, bottom - height), (x + half, bottom - 0.2 * height)])
    else:
        r = height * rng.uniform(0.26, 0.36)
        cy = bottom - height + r
        crown = c.ellipse(x, cy, r, r * rng.uniform(0.8, 1.05))
        crown |= c.ellipse(x + rng.uniform(-0.5, 0.5) * r, cy + 0.3 * r, 0.7 * r, 0.6 * r)
    c.paint(crown, "tree", "crown", Look(_pick(rng, leaves), "foliage"))


def _rock(c: Canvas, x: float, bottom: float, width: float) -> None:
    """A boulder resting on the ground."""
    mask = c.ellipse(x, bottom - 0.25 * width, width / 2, 0.35 * width) & (c.y < bottom)
    color = _pick(c.rng, (("gray", "brown", "black"), (0.6, 0.3, 0.1)))
    c.paint(mask, "rock", None, Look(color, "stone"))


def _flowers(c: Canvas, x: float, y: float, spread: float) -> None:
    """A bed of small same-coloured flowers."""
    rng = c.rng
    n = rng.integers(8, 18)
    mask = c.discs(rng.normal(x, spread, n), rng.normal(y, 0.35 * spread, n), rng.uniform(0.015, 0.026, n))
    color = _pick(rng, (("red", "yellow", "pink", "purple", "white", "orange"), None))
    c.paint(mask, "flower", None, Look(color, "foliage"))


# People and things outdoors -----------------------------------------------------


def _person(c: Canvas, x: float, bottom: float, height: float) -> None:
    """A standing person: legs, torso and head."""
    rng = c.rng
    h = height
    legs = c.rect(x - 0.11 * h, bottom - 0.45 * h, x + 0.11 * h, bottom)
    legs &= ~c.rect(x - 0.025 * h, bottom - 0.3 * h, x + 0.025 * h, bottom)
    trousers = _pick(rng, (("blue", "black", "brown", "gray"), None))
    c.paint(legs, "person", "legs", Look(trousers, "fabric"))
    shirt = _pick(rng, CLOTH)
    look = _maybe_patterned(rng, shirt, "fabric", 0.3, ("striped", "dotted"))
    c.paint(c.rect(x - 0.15 * h, bottom - 0.79 * h, x + 0.15 * h, bottom - 0.43 * h), "person", "torso", look)
    skin = _pick(rng, (("pink", "orange", "brown"), (0.5, 0.25, 0.25)))
    c.paint(c.ellipse(x, bottom - 0.89 * h, 0.09 * h, 0.11 * h), "person", "head", Look(skin, "skin"))


def _car(c: Canvas, x: float, bottom: float, width: float) -> None:
    """A side view of a car: body, cabin with windows and two wheels."""
    rng = c.rng
    w, h = width, 0.5 * width
    d = 1.0 if rng.random() < 0.5 else -1.0
    body = _pick(rng, VIVID)
    low, high = bottom - 0.55 * h, bottom - h
    cabin = c.polygon(
        [(x - 0.38 * w * d, low), (x - 0.26 * w * d, high), (x + 0.16 * w * d, high), (x + 0.3 * w * d, low)]
    )
    hood = c.rect(x - w / 2, low, x + w / 2, bottom - 0.12 * h)
    c.paint(cabin | hood, "car", "car-body", Look(body, "metal"))
    glass = c.polygon(
        [
            (x - 0.31 * w * d, low),
            (x - 0.22 * w * d, high + 0.1 * h),
            (x + 0.13 * w * d, high + 0.1 * h),
            (x + 0.23 * w * d, low),
        ]
    )
    c.paint(glass, "car", "car-window", Look(_pick(rng, (("blue", "black", "gray"), None)), "glass"))
    r = 0.11 * w
    wheels = c.discs(np.array([x - 0.3 * w, x + 0.3 * w]), np.full(2, bottom - r), np.full(2, r))
    c.paint(wheels, "car", "wheel", Look("black", "rubber"))


def _building(c: Canvas, x0: float, x1: float, top: float, bottom: float) -> None:
    """A building: facade, roof, a grid of windows, a door and maybe an awning."""
    rng = c.rng
    if rng.random() < 0.5:
        color = _pick(rng, (("red", "brown", "orange"), (0.5, 0.35, 0.15)))
        facade = Look(color, "brick", "bricked", _pick(rng, (("white", "gray"), None)))
    else:
        color = _pick(rng, (("gray", "white", "yellow", "pink", "blue"), None))
        facade = _maybe_patterned(rng, color, "concrete", 0.25, ("striped",))
    c.paint(c.rect(x0, top, x1, bottom), "building", "facade", facade, angle=90.0)
    _roof(c, x0, x1, top)
    _house_windows(c, x0, x1, top + 0.03, bottom - 0.15)
    door_w = rng.uniform(0.045, 0.07)
    dx = rng.uniform(x0 + 0.01, max(x0 + 0.01, x1 - door_w - 0.01))
    door_top = bottom - rng.uniform(0.09, 0.13)
    if rng.random() < 0.35:
        cloth = _pick(rng, (("red", "green", "blue", "orange", "purple"), None))
        look = _textured(rng, cloth, "fabric", "striped")
        c.paint(
            c.rect(dx - 0.02, door_top - 0.045, dx + door_w + 0.02, door_top - 0.01),
            "building",
            "awning",
            look,
            angle=0.0,
        )
    door = _pick(rng, (("brown", "red", "black", "green"), (0.55, 0.2, 0.15, 0.1)))
    c.paint(c.rect(dx, door_top, dx + door_w, bottom), "building", "house-door", Look(door, "wood"))


def _roof(c: Canvas, x0: float, x1: float, top: float) -> None:
    """A pitched or flat roof on top of a facade."""
    rng = c.rng
    color = _pick(rng, (("red", "brown", "black", "gray"), (0.35, 0.25, 0.2, 0.2)))
    look = Look(color, "tile" if color in ("red", "brown") else "metal")
    if rng.random() < 0.5:
        mask = c.polygon(
            [(x0 - 0.02, top + 0.005), ((x0 + x1) / 2, top - rng.uniform(0.06, 0.14)), (x1 + 0.02, top + 0.005)]
        )
    else:
        mask = c.rect(x0 - 0.01, top - rng.uniform(0.025, 0.04), x1 + 0.01, top + 0.005)
    c.paint(mask, "building", "roof", look)


def _house_windows(c: Canvas, x0: float, x1: float, top: float, bottom: float) -> None:
    """A regular grid of windows inside a facade region."""
    rng = c.rng
    if bottom - top < 0.06:
        return
    cols = max(1, round((x1 - x0) / rng.uniform(0.08, 0.11)))
    rows = max(1, round((bottom - top) / rng.uniform(0.09, 0.12)))
    u = np.mod((c.x - x0) / (x1 - x0) * cols, 1.0)
    v = np.mod((c.y - top) / (bottom - top) * rows, 1.0)
    margin_u, margin_v = rng.uniform(0.2, 0.3), rng.uniform(0.15, 0.3)
    mask = c.rect(x0, top, x1, bottom) & (np.abs(u - 0.5) < 0.5 - margin_u)
    mask &= np.abs(v - 0.5) < 0.5 - margin_v
    color = _pick(rng, (("blue", "black", "yellow", "white", "gray"), (0.35, 0.2, 0.2, 0.1, 0.15)))
    c.paint(mask, "building", "house-window", Look(color, "glass"))


def _road(c: Canvas, top: float, bottom: float) -> None:
    """A road band with dashed lane markings."""
    rng = c.rng
    asphalt = _pick(rng, (("gray", "black"), (0.6, 0.4)))
    c.paint(c.rect(0, top, 1, bottom), "road", None, Look(asphalt, "asphalt"))
    mid, half = top + rng.uniform(0.35, 0.6) * (bottom - top), _thick(c, 0.018)
    dashes = np.mod(c.x * rng.uniform(3, 6) + rng.random(), 1.0) < 0.5
    color = _pick(rng, (("white", "yellow"), (0.7, 0.3)))
    c.paint(c.rect(0, mid - half, 1, mid + half) & dashes, "road", "lane-marking", Look(color, "asphalt"))


def _bench(c: Canvas, x: float, bottom: float, width: float) -> None:
    """A park bench: seat, backrest and two legs."""
    rng = c.rng
    w = width
    color = _pick(rng, (("brown", "green", "black", "red", "gray"), (0.45, 0.2, 0.15, 0.1, 0.1)))
    seat_y = bottom - 0.3 * w
    leg = _thick(c, 0.06 * w)
    mask = c.rect(x - w / 2, seat_y, x + w / 2, seat_y + _thick(c, 0.08 * w))
    mask |= c.rect(x - w / 2, seat_y - 0.28 * w, x + w / 2, seat_y - 0.12 * w)
    mask |= c.rect(x - 0.42 * w, seat_y, x - 0.42 * w + leg, bottom)
    mask |= c.rect(x + 0.42 * w - leg, seat_y, x + 0.42 * w, bottom)
    c.paint(mask, "bench", None, Look(color, "wood" if color == "brown" else "metal"))


def _boat(c: Canvas, x: float, waterline: float, width: float) -> None:
    """A boat: hull, and usually a mast with a sail."""
    rng = c.rng
    w = width
    top = waterline - 0.16 * w
    hull = c.polygon(
        [(x - w / 2, top), (x + w / 2, top), (x + 0.36 * w, waterline + 0.03 * w), (x - 0.36 * w, waterline + 0.03 * w)]
    )
    color = _pick(rng, (("white", "red", "brown", "blue", "yellow", "black"), None))
    c.paint(hull, "boat", "hull", Look(color, "wood" if color == "brown" else "metal"))
    if rng.random() < 0.2:
        return
    d = 1.0 if rng.random() < 0.5 else -1.0
    mast_w = _thick(c, 0.025 * w)
    mast_top = top - rng.uniform(0.75, 1.0) * w
    c.paint(c.rect(x - mast_w / 2, mast_top, x + mast_w / 2, top), "boat", "mast", Look("brown", "wood"))
    sail = c.polygon(
        [(x + d * mast_w, top - 0.06 * w), (x + d * mast_w, mast_top + 0.04 * w), (x + d * 0.45 * w, top - 0.06 * w)]
    )
    cloth = _pick(rng, (("white", "red", "yellow", "orange"), (0.55, 0.2, 0.15, 0.1)))
    c.paint(sail, "boat", "sail", _maybe_patterned(rng, cloth, "fabric", 0.3, ("striped",)))


# Indoors ------------------------------------------------------------------------


def _window(c: Canvas, x0: float, y0: float, x1: float, y1: float) -> None:
    """A window: frame and two or four panes."""
    rng = c.rng
    frame = _pick(rng, (("white", "brown", "black"), (0.5, 0.35, 0.15)))
    c.paint(c.rect(x0, y0, x1, y1), "window", "window-frame", Look(frame, "wood"))
    bar = _thick(c, 0.015)
    rows = 1 + int(rng.random() < 0.5)
    panes = c.rect(x0 + bar, y0 + bar, x1 - bar, y1 - bar) & (np.abs(c.x - (x0 + x1) / 2) > bar / 2)
    if rows == 2:
        panes &= np.abs(c.y - (y0 + y1) / 2) > bar / 2
    color = _pick(rng, (("blue", "black", "gray", "white"), (0.55, 0.15, 0.15, 0.15)))
    c.paint(panes, "window", "pane", Look(color, "glass"))


def _door(c: Canvas, x0: float, x1: float, top: float, bottom: float) -> None:
    """An interior door with a knob."""
    rng = c.rng
    color = _pick(rng, (("brown", "white", "red", "gray"), (0.5, 0.3, 0.1, 0.1)))
    c.paint(c.rect(x0, top, x1, bottom), "door", None, Look(color, "wood"))
    r = _thick(c, 0.012)
    kx = x0 + 0.8 * (x1 - x0) if rng.random() < 0.5 else x0 + 0.2 * (x1 - x0)
    c.paint(
        c.ellipse(kx, (top + bottom) / 2 + 0.03, r, r),
        "door",
        None,
        Look(_pick(rng, (("yellow", "gray"), None)), "metal"),
    )


def _bed(c: Canvas, x0: float, x1: float, bottom: float, height: float) -> None:
    """A side view of a bed: headboard, blanket and pillow."""
    rng = c.rng
    flip = rng.random() < 0.5
    board_w = _thick(c, 0.045)
    hx0, hx1 = (x1 - board_w, x1) if flip else (x0, x0 + board_w)
    wood = _pick(rng, (("brown", "white", "black"), (0.6, 0.25, 0.15)))
    c.paint(c.rect(hx0, bottom - height, hx1, bottom), "bed", "headboard", Look(wood, "wood"))
    mattress_top = bottom - 0.55 * height
    cloth = _pick(rng, CLOTH)
    blanket = _maybe_patterned(rng, cloth, "fabric", 0.65)
    c.paint(
        c.rect(x0 + board_w * (not flip), mattress_top, x1 - board_w * flip, bottom - 0.08 * height),
        "bed",
        "blanket",
        blanket,
    )
    px = hx1 + 0.06 if not flip else hx0 - 0.06
    pillow = _pick(rng, (("white", "pink", "yellow", "blue"), (0.55, 0.15, 0.15, 0.15)))
    c.paint(c.ellipse(px, mattress_top - 0.01, 0.055, 0.03), "bed", "pillow", Look(pillow, "fabric"))


def _table(c: Canvas, x0: float, x1: float, bottom: float, height: float) -> None:
    """A table: top and two legs."""
    rng = c.rng
    color = _pick(rng, WOODS)
    look = Look(color, "wood" if color in ("brown", "orange", "yellow") else "metal")
    top = bottom - height
    c.paint(c.rect(x0, top, x1, top + _thick(c, 0.035)), "table", "tabletop", look)
    leg = _thick(c, 0.02)
    legs = c.rect(x0 + 0.02, top, x0 + 0.02 + leg, bottom) | c.rect(x1 - 0.02 - leg, top, x1 - 0.02, bottom)
    c.paint(legs, "table", "table-leg", look)


def _lamp(c: Canvas, x: float, bottom: float, height: float) -> None:
    """A floor lamp: post with a foot and a lampshade."""
    rng = c.rng
    h = height
    post = _thick(c, 0.02)
    metal = _pick(rng, (("black", "gray", "brown", "yellow"), (0.4, 0.3, 0.15, 0.15)))
    mask = c.rect(x - post / 2, bottom - 0.8 * h, x + post / 2, bottom)
    mask |= c.rect(x - 0.1 * h, bottom - _thick(c, 0.02), x + 0.1 * h, bottom)
    c.paint(mask, "lamp", "lamp-post", Look(metal, "metal"))
    top = bottom - h
    shade = c.polygon(
        [(x - 0.1 * h, top), (x + 0.1 * h, top), (x + 0.17 * h, top + 0.25 * h), (x - 0.17 * h, top + 0.25 * h)]
    )
    cloth = _pick(rng, (("yellow", "white", "orange", "red", "pink"), None))
    c.paint(shade, "lamp", "lampshade", Look(cloth, "fabric"))


def _rug(c: Canvas, x: float, y: float, rx: float, ry: float) -> None:
    """A patterned rug on the floor."""
    rng = c.rng
    cloth = _pick(rng, CLOTH)
    mask = c.ellipse(x, y, rx, ry) if rng.random() < 0.4 else c.rect(x - rx, y - ry, x + rx, y + ry)
    c.paint(mask, "rug", None, _maybe_patterned(rng, cloth, "fabric", 0.8))


# Scenes -------------------------------------------------------------------------


def _street(c: Canvas) -> None:
    """Buildings along a road with cars; sometimes people and street trees."""
    rng = c.rng
    road_top = rng.uniform(0.6, 0.72)
    _sky(c, road_top)
    _weather(c, road_top - 0.2, 0.3, 2)
    edges = np.sort(rng.uniform(0, 1, rng.integers(1, 4)))
    bounds = np.concatenate([[rng.uniform(-0.1, 0.05)], edges, [rng.uniform(0.95, 1.1)]])
    for x0, x1 in itertools.pairwise(bounds):
        if x1 - x0 > 0.12:
            gap = rng.uniform(0.0, 0.03)
            _building(c, x0 + gap, x1 - gap, rng.uniform(0.15, road_top - 0.28), road_top)
    _road(c, road_top, 1.01)
    items = [
        (b, partial(_car, c, rng.uniform(0.1, 0.9), b, rng.uniform(0.2, 0.32)))
        for b in rng.uniform(road_top + 0.12, 0.98, rng.integers(1, 4))
    ]
    if rng.random() < 0.35:
        b = road_top + rng.uniform(0.02, 0.1)
        items.append((b, partial(_person, c, rng.uniform(0.05, 0.95), b, rng.uniform(0.2, 0.3))))
    if rng.random() < 0.25:
        b = road_top + 0.02
        height = rng.uniform(0.3, 0.45)
        items.append((b, partial(_tree, c, rng.uniform(0.05, 0.95), b, height, LEAVES, False)))
    _draw_in_depth(items)


def _park(c: Canvas) -> None:
    """Grass and trees under the sky, with benches, flowers or people."""
    rng = c.rng
    horizon = rng.uniform(0.4, 0.58)
    _sky(c, horizon)
    _weather(c, horizon, 0.4, 3)
    _ground(c, "grass", horizon, GRASS, "foliage")
    items = []
    for b in rng.uniform(horizon + 0.05, 0.85, rng.integers(1, 5)):
        items.append(
            (
                b,
                partial(
                    _tree,
                    c,
                    rng.uniform(0.05, 0.95),
                    b,
                    rng.uniform(0.3, 0.55),
                    LEAVES if rng.random() < 0.85 else AUTUMN,
                    rng.random() < 0.2,
                ),
            )
        )
    extras = rng.random(3) < (0.55, 0.5, 0.6)
    if not extras.any():
        extras[0] = True
    if extras[0]:
        b = rng.uniform(horizon + 0.15, 0.95)
        items.append((b, partial(_bench, c, rng.uniform(0.15, 0.85), b, rng.uniform(0.2, 0.3))))
    if extras[1]:
        b = rng.uniform(horizon + 0.1, 0.92)
        items.append((b, partial(_flowers, c, rng.uniform(0.1, 0.9), b, rng.uniform(0.05, 0.1))))
    for _ in range(rng.integers(1, 3) if extras[2] else 0):
        b = rng.uniform(horizon + 0.15, 0.98)
        items.append((b, partial(_person, c, rng.uniform(0.05, 0.95), b, rng.uniform(0.22, 0.38))))
    if rng.random() < 0.15:
        b = rng.uniform(horizon + 0.2, 0.95)
        x = rng.uniform(0.0, 0.7)
        items.append((b, partial(_table, c, x, x + rng.uniform(0.2, 0.3), b, rng.uniform(0.1, 0.15))))
    _draw_in_depth(items)


def _lake(c: Canvas) -> None:
    """Open water with boats; maybe distant trees, mountains and a grassy shore."""
    rng = c.rng
    horizon = rng.uniform(0.35, 0.55)
    _sky(c, horizon + 0.01)
    _weather(c, horizon, 0.35, 2)
    if rng.random() < 0.3:
        for _ in range(rng.integers(1, 3)):
            _mountain(c, horizon, 0.5)
    if rng.random() < 0.6:
        leaves = LEAVES if rng.random() < 0.85 else AUTUMN
        conifer = rng.random() < 0.5
        for x in np.sort(rng.uniform(0, 1, rng.integers(5, 13))):
            _tree(c, x, horizon + 0.01, rng.uniform(0.08, 0.16), leaves, conifer)
    shore = rng.uniform(0.82, 0.93) if rng.random() < 0.35 else 1.01
    _water(c, horizon, shore)
    items = []
    if rng.random() < 0.85:
        for b in rng.uniform(horizon + 0.1, shore - 0.02, rng.integers(1, 4)):
            items.append((b, partial(_boat, c, rng.uniform(0.1, 0.9), b, rng.uniform(0.15, 0.3) * (0.6 + b - horizon))))
    _draw_in_depth(items)
    if shore < 1:
        _ground(c, "grass", shore, GRASS, "foliage")
        if rng.random() < 0.4:
            _person(c, rng.uniform(0.1, 0.9), rng.uniform(shore + 0.04, 0.99), rng.uniform(0.22, 0.32))


def _forest(c: Canvas) -> None:
    """Dense trees over a canopy backdrop, a little sky, rocks on the ground."""
    rng = c.rng
    leaves = LEAVES if rng.random() < 0.8 else AUTUMN
    sky_bottom = rng.uniform(0.12, 0.35) if rng.random() < 0.6 else 0.0
    _sky(c, sky_bottom)
    ground = rng.uniform(0.55, 0.75)
    canopy = _pick(rng, leaves)
    c.paint(c.rect(0, sky_bottom, 1, ground), "tree", "crown", Look(canopy, "foliage"), shade=-0.3)
    _ground(c, "grass", ground, GRASS, "foliage")
    conifers = rng.random()
    items = []
    for b in rng.uniform(ground, 1.0, rng.integers(5, 11)):
        items.append(
            (b, partial(_tree, c, rng.uniform(0, 1), b, rng.uniform(0.45, 0.9), leaves, rng.random() < conifers))
        )
    if rng.random() < 0.5:
        for b in rng.uniform(ground + 0.05, 1.0, rng.integers(1, 3)):
            items.append((b, partial(_rock, c, rng.uniform(0.05, 0.95), b, rng.uniform(0.1, 0.2))))
    if rng.random() < 0.15:
        b = rng.uniform(ground + 0.1, 0.98)
        items.append((b, partial(_person, c, rng.uniform(0.1, 0.9), b, rng.uniform(0.22, 0.35))))
    _draw_in_depth(items)


def _room(c: Canvas) -> None:
    """Wall and floor with furniture, a window, a door, maybe a rug and a person."""
    rng = c.rng
    floor = rng.uniform(0.55, 0.72)
    wall = _maybe_patterned(rng, _pick(rng, WALLS), "plaster", 0.6)
    c.paint(c.rect(0, 0, 1, floor), "wall", None, wall, shade=0.1)
    _floor(c, floor)
    if rng.random() < 0.7:
        x0, y0 = rng.uniform(0.05, 0.6), rng.uniform(0.06, 0.2)
        _window(c, x0, y0, x0 + rng.uniform(0.18, 0.32), y0 + rng.uniform(0.2, floor - y0 - 0.12))
    if rng.random() < 0.5:
        x0 = rng.uniform(0.0, 0.85)
        _door(c, x0, x0 + rng.uniform(0.12, 0.18), rng.uniform(0.12, 0.25), floor + 0.01)
    if rng.random() < 0.35:
        x, y = rng.uniform(0.2, 0.8), rng.uniform(floor + 0.1, 0.9)
        _rug(c, x, y, rng.uniform(0.15, 0.3), rng.uniform(0.05, 0.1))
    furniture = rng.random(3) < (0.55, 0.55, 0.5)
    if not furniture.any():
        furniture[rng.integers(3)] = True
    items = []
    if furniture[0]:
        b, x0 = rng.uniform(floor + 0.1, 0.98), rng.uniform(-0.1, 0.5)
        items.append((b, partial(_bed, c, x0, x0 + rng.uniform(0.4, 0.6), b, rng.uniform(0.22, 0.32))))
    if furniture[1]:
        b, x0 = rng.uniform(floor + 0.08, 0.98), rng.uniform(0.0, 0.7)
        items.append((b, partial(_table, c, x0, x0 + rng.uniform(0.2, 0.35), b, rng.uniform(0.15, 0.22))))
    if furniture[2]:
        b = rng.uniform(floor + 0.05, 0.98)
        items.append((b, partial(_lamp, c, rng.uniform(0.08, 0.92), b, rng.uniform(0.35, 0.5))))
    if rng.random() < 0.25:
        b = rng.uniform(floor + 0.08, 0.99)
        items.append((b, partial(_person, c, rng.uniform(0.1, 0.9), b, rng.uniform(0.35, 0.5))))
    _draw_in_depth(items)


def _floor(c: Canvas, top: float) -> None:
    """A wooden (planked), tiled (chequered) or carpeted floor."""
    rng = c.rng
    kind = rng.integers(3)
    if kind == 0:
        color = _pick(rng, (("brown", "orange", "yellow"), (0.6, 0.25, 0.15)))
        look = Look(color, "wood", "striped", _accent(rng, color, ("brown", "black", "orange")))
        c.paint(c.rect(0, top, 1, 1.01), "floor", None, look, angle=0.0)
    elif kind == 1:
        color = _pick(rng, (("white", "gray", "red", "black"), None))
        look = Look(color, "tile", "chequered", _accent(rng, color, ("white", "gray", "black", "red")))
        c.paint(c.rect(0, top, 1, 1.01), "floor", None, look)
    else:
        color = _pick(rng, (("red", "blue", "gray", "green", "purple", "brown"), None))
        c.paint(c.rect(0, top, 1, 1.01), "floor", None, Look(color, "fabric"))


def _mountains(c: Canvas) -> None:
    """Mountain range under the sky; grass or rocky foreground, maybe trees."""
    rng = c.rng
    base = rng.uniform(0.55, 0.8)
    _sky(c, base)
    _weather(c, base - 0.2, 0.35, 3)
    for _ in range(rng.integers(1, 4)):
        _mountain(c, base, 0.75)
    if rng.random() < 0.65:
        _ground(c, "grass", base, GRASS, "foliage")
    else:
        _ground(c, "mountain", base, (("gray", "brown"), None), "stone")
    items = []
    if rng.random() < 0.4:
        for b in rng.uniform(base + 0.02, 1.0, rng.integers(2, 6)):
            height = rng.uniform(0.15, 0.3) * (b - base + 0.5)
            items.append((b, partial(_tree, c, rng.uniform(0, 1), b, height, LEAVES, True)))
    if rng.random() < 0.4:
        for b in rng.uniform(base + 0.05, 1.0, rng.integers(1, 4)):
            items.append((b, partial(_rock, c, rng.uniform(0.05, 0.95), b, rng.uniform(0.08, 0.2))))
    if rng.random() < 0.15:
        top = rng.uniform(base + 0.05, 0.85)
        items.append((top, partial(_road, c, top, top + rng.uniform(0.08, 0.14))))
    _draw_in_depth(items)


COMPOSERS: dict[str, Callable[[Canvas], None]] = {
    "street": _street,
    "park": _park,
    "lake": _lake,
    "forest": _forest,
    "room": _room,
    "mountain": _mountains,
}
assert tuple(COMPOSERS) == SCENES


def scene_of(seed: int, index: int) -> str:
    """Scene class of an image: each block of consecutive indices holds every
    scene once, in an order drawn from (seed, block).

    Args:
        seed: world seed.
        index: image index.

    Returns:
        Scene name.
    """
    block, slot = divmod(index, len(SCENES))
    order = np.random.default_rng([seed, block, _SCENE_BLOCK_TAG]).permutation(len(SCENES))
    return SCENES[order[slot]]


def render_sample(seed: int, index: int, size: int) -> Sample:
    """Render one image of the synthetic world with its labels.

    Args:
        seed: world seed.
        index: image index (global row number).
        size: width and height in pixels (even).

    Returns:
        The rendered sample.
    """
    scene = scene_of(seed, index)
    canvas = Canvas(size, np.random.default_rng([seed, index]))
    COMPOSERS[scene](canvas)
    return Sample(canvas.image(), canvas.planes(), concept_id("scene", scene), canvas.texture())
