"""The HTTP API (FastAPI). Never imports torch: thumbnails are read with ``model.thumbnail`` alone."""
