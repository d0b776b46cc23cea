"""Training TADM in the supplement's three stages; run by `tadm train` (and `accelerate launch`).

``registry`` holds the :class:`Stage` record and the table of stages, ``stages`` the supplement's three (and
registers ``stage0``, the nano backbone from scratch), ``losses`` the loss terms, ``data`` the image-folder
crops, ``trainer`` the accelerate loop, ``checkpointing`` its checkpoints and resume, ``history`` the record of
the stages that made a model (``training.json``), and ``cli`` the `tadm train` command. Shipping a trained model
into the repository is ``scripts/ship.py``.
"""
