"""Procedural synthetic world with ground-truth concept labels, in Broden format."""

from .render import Sample, render_sample, scene_of
from .vocabulary import (
    CATEGORIES,
    CONCEPTS,
    IMAGE_CATEGORIES,
    PIXEL_CATEGORIES,
    Concept,
    category_concepts,
    concept_id,
    concept_table,
)
from .write import write_world

__all__ = [
    "CATEGORIES",
    "CONCEPTS",
    "IMAGE_CATEGORIES",
    "PIXEL_CATEGORIES",
    "Concept",
    "Sample",
    "category_concepts",
    "concept_id",
    "concept_table",
    "render_sample",
    "scene_of",
    "write_world",
]
