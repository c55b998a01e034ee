"""Model metadata, the catalog format (validated, with errors naming file, model and field) and
the ``Catalog`` that merges catalog files."""

from .catalog import Catalog
from .model import ModelFile, ModelMetadata, Performance, Requirements
from .parse import (
    load_builtin,
    load_catalog_file,
    normalize_hash,
    parse_catalog,
    parse_model,
    validate_id,
)

__all__ = [
    "Catalog",
    "ModelFile",
    "ModelMetadata",
    "Performance",
    "Requirements",
    "load_builtin",
    "load_catalog_file",
    "normalize_hash",
    "parse_catalog",
    "parse_model",
    "validate_id",
]
