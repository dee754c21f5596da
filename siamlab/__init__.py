"""siamlab: joint-embedding self-supervised learning that explains collapse."""
__version__ = "0.1.0"
