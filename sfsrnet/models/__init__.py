"""Separators written in this project; importing this package registers them.

The dual-path transformer masker (:mod:`sfsrnet.models.dual_path`) is shared by SepFormer
(:mod:`sfsrnet.models.sepformer`, registered as ``sepformer``) and the SFSRNet separator
(:mod:`sfsrnet.models.sfsrnet`, registered as ``sfsrnet``).
"""

from sfsrnet.models import sepformer, sfsrnet  # noqa: F401
