"""Model metadata, the catalog format (validated, with errors naming file, model and field) and
the ``Catalog`` that merges catalog files."""

from .catalog import Catalog, CatalogFetcher, is_catalog_url
from .model import Endpoint, ModelFile, ModelMetadata, Performance, Requirements
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
    "CatalogFetcher",
    "Endpoint",
    "ModelFile",
    "ModelMetadata",
    "Performance",
    "Requirements",
    "is_catalog_url",
    "load_builtin",
    "load_catalog_file",
    "normalize_hash",
    "parse_catalog",
    "parse_model",
    "validate_id",
]
