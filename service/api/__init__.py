"""The HTTP API (FastAPI), run by ``tadm serve`` or ``uvicorn --factory service.api.app:create_app``; stateless
replicas. Never imports torch: thumbnails are read with ``model.thumbnail`` alone.

``app`` is the factory; ``routes/`` parse requests, call a use case of :mod:`.usecases` and respond; ``schemas``
are the response bodies of the contract, ``views`` turn records into them, ``responses`` the shared response
shapes, ``problems`` maps every error to problem+json, ``auth`` keys and signed URLs, ``uploads`` reads request
bodies within limits, ``deps`` the FastAPI dependencies, ``metrics`` the Prometheus middleware.
"""
