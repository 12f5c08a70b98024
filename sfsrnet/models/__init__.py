"""Separators built in this package: the dual-path transformer masker shared by SepFormer and the
SFSRNet separator (:mod:`sfsrnet.models.dual_path`) and the SFSRNet separator itself."""
