"""Training TADM in the supplement's three stages (spec section 6).

``stages`` holds the registry (what each stage trains, its optimiser, schedule and loss), ``losses`` the loss
terms, ``data`` the image-folder crops, ``trainer`` the accelerate loop with checkpoints and resume, and
``cli`` the `tadm train` command.
"""
