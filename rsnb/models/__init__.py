"""Models: backbone, MVSA, text encoders, visual-guided attention, AMFMN, MSA."""
