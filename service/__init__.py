"""tadm's microservice: HTTP API, Redis job queue, worker pool and storage."""
