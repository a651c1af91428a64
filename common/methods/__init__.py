"""Reconstruction methods as siblings with one signature, ``(task, priors, settings, n_samples, seed) -> samples``.

=========  ====================================================================  ===========================
name       what                                                                  module
=========  ====================================================================  ===========================
STeP       DAPS with the spatiotemporal video prior (STeP paper Algorithm 1)     :mod:`common.methods.step`
IDM+BCS    DAPS with the image prior, batch-consistent noise (App. B.3, Eq. 17)  :mod:`common.methods.idm`
IDM        DAPS with the image prior per frame                                   :mod:`common.methods.idm`
SVI        image prior, CG on the video's data term, shared DDIM noise (001)     :mod:`common.methods.svi`
VISION-XL  latent image prior, batch-consistent inversion, low-pass (002)        :mod:`common.methods.vision_xl`
TCVR       MAP in the seed space, low-rank residuals, TV-L1 warping (004)        :mod:`common.methods.tcvr`
=========  ====================================================================  ===========================

:data:`METHODS` maps each name to its :class:`~common.methods.base.Method` (sampling function, settings presets,
description). Only the command-line edge (:mod:`common.recon.cli`) and the benchmarks look names up; adding a
method is one module plus one line here.
"""

from common.methods.base import Method
from common.methods.idm import IDM, IDM_BCS
from common.methods.step import STEP
from common.methods.svi import SVI
from common.methods.tcvr import TCVR
from common.methods.vision_xl import VISION_XL

METHODS: dict[str, Method] = {m.name: m for m in (STEP, IDM_BCS, IDM, SVI, VISION_XL, TCVR)}
DAPS_METHODS = tuple(name for name, m in METHODS.items() if m.uses_daps)  # ("STeP", "IDM+BCS", "IDM")

__all__ = ["DAPS_METHODS", "METHODS", "Method"]
