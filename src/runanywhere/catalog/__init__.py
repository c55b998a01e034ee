"""Model metadata and the catalog format (DESIGN §1.1)."""

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
