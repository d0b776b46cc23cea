"""Evaluation: full-reference metrics on the Y channel, the codec and bicubic baselines at equal bytes, the
reports (Markdown, CSV, rate-distortion plot, side-by-side crops) and the timestep diagnostic.

The metric and baseline modules need only numpy, scipy and Pillow; the model and the diagnostic need torch.
"""
