"""vidlatent: generate and edit video with latent video diffusion models.

The library works without the command line::

    from vidlatent import latentfile
    clip = latentfile.read("clip.safetensors")

Heavy modules (torch, diffusers) load only when a function that needs them runs.
"""

__version__ = "0.1.0"
