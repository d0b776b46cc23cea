"""The worker, run by ``tadm worker``: one long-lived process per device with its model loaded once.

:mod:`.process` is the loop (read a batch, run it, acknowledge) with its monitor (heartbeat, progress,
cancellation); :mod:`.batch` runs a batch of started jobs on the pipeline; :mod:`.failures` decides between
failing and retrying; :mod:`.in_flight` is the state the loop, the monitor and the compute thread share;
:mod:`.loading` chooses and loads the model (the only module that imports torch); :mod:`.metrics` holds the
Prometheus metrics.
"""
