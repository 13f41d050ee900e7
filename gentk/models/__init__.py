"""gentk's models. MODELS maps the CLI name to (import path, paper); ``build(name, **config)``
makes one."""
import importlib

MODELS = {
    "vae": ("gentk.models.vae:VAE", "Kingma & Welling 2014, Auto-Encoding Variational Bayes"),
    "beta_vae": ("gentk.models.beta_vae:BetaVAE", "Higgins et al. 2017 (H); Burgess et al. 2018 (B, capacity C)"),
    "joint_vae": ("gentk.models.joint_vae:JointVAE", "Dupont 2018, Joint continuous and discrete latents"),
    "gan": ("gentk.models.gan:GAN", "Goodfellow et al. 2014, Generative Adversarial Nets"),
    "cgan": ("gentk.models.cgan:CGAN", "Mirza & Osindero 2014, Conditional Generative Adversarial Nets"),
    "infogan": ("gentk.models.infogan:InfoGAN", "Chen et al. 2016, InfoGAN"),
    "pix2pix": ("gentk.models.pix2pix:Pix2Pix", "Isola et al. 2017, Image-to-Image Translation with cGANs"),
    "cyclegan": ("gentk.models.cyclegan:CycleGAN", "Zhu et al. 2017, Unpaired Translation (Cycle-Consistent GANs)"),
    "stargan": ("gentk.models.stargan:StarGAN", "Choi et al. 2018, StarGAN: Multi-Domain Image-to-Image Translation"),
}


class UnknownModel(ValueError):
    pass


def model_class(name):
    if name not in MODELS:
        raise UnknownModel(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    module, cls = MODELS[name][0].split(":")
    return getattr(importlib.import_module(module), cls)


def build(name, **config):
    return model_class(name)(**config)


__all__ = ["MODELS", "UnknownModel", "build", "model_class"]
