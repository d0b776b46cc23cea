"""The job queue on Redis Streams, used by both processes: the API enqueues, waits and cancels; the worker reads,
reclaims, reports progress and acknowledges (:mod:`.job_queue`). Also the job record with its typed parameters
(:mod:`.jobs`) and the workers' registrations and heartbeats (:mod:`.registry`). Never imports torch."""
