"""tadm's microservice, grouped by the process that runs each part.

- ``api``: the HTTP API (``tadm serve``, ``uvicorn --factory service.api.app:create_app``); never imports torch.
- ``worker``: ``tadm worker``, one process per device with its model loaded once.
- ``queue``: the job queue on Redis Streams, job records and worker registrations (API and worker).
- ``storage``: bytes, content-addressed keys, the reconstruction cache and image records (API and worker).
- ``cli``: the ``tadm`` command; ``dev``: ``tadm serve --dev`` and the tests' Redis; ``client``: the Python client.
- Top level, shared: ``config`` (settings), ``errors`` (problems), ``wiring`` (the services built once per
  process), ``media`` (image bytes), ``redis_keys`` (every Redis key name).

``model/`` never imports this package.
"""
