"""Training pipeline of the STeP prior: VAE, image diffusion UNet, joint image-video fine-tuning (paper App. C).

Entry point: ``common.training.loop.train_stage``; CLI ``stepvip train vae|image|video`` and
``stepvip sample-prior`` (``common.training.cli``).
"""
