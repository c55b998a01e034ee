"""Route groups of ``runanywhere serve``: one module each, ``add_routes(router, ctx)``.

``models`` (``/v1/models``, a model's files, blobs by sha256), ``catalog`` (``/catalog.json``),
``hub`` (the Hugging Face Hub's read routes). The server registers them in the order
``serve/app.py``'s ``ROUTE_GROUPS`` lists (see the package docstring for adding one).
"""
