"""Vision-language generation behind one interface (guidepost.vlm.base.VLM).

Nothing here imports torch: the gunicorn master imports this package's parent and must never load torch.
"""


class GenerationTimeout(RuntimeError):
    """The model stayed busy with other requests until the deadline."""
