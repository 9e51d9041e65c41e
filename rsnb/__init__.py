"""rsnb: cross-modal remote-sensing image-text retrieval (AMFMN, MSA)."""
__version__ = "0.1.0"
