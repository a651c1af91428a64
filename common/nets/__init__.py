"""Prior networks of STeP: per-frame KL autoencoder and the EDM-preconditioned spatiotemporal UNet.

``VideoUNet(config)(z [B, T, C, H, W], sigma [B], video=True)`` returns the denoised estimate ``D(z; sigma)``;
``video=False`` is the image mode (every frame independently, no temporal operation).
"""

from common.nets.config import UNetConfig, VAEConfig, config_from_dict, config_to_dict
from common.nets.unet import VideoUNet, count_parameters
from common.nets.vae import FrameVAE

__all__ = ["FrameVAE", "UNetConfig", "VAEConfig", "VideoUNet", "config_from_dict", "config_to_dict",
           "count_parameters"]
