"""Named presets of the generative models; ``zoo/generative/__init__.py`` registers them."""

from zoo.generative.classifier import ClassifierConfig
from zoo.generative.config import GANConfig, VAEConfig

VAE_PRESETS: dict[str, VAEConfig] = {
    "vae_conv_fashion_mnist": VAEConfig(architecture="conv", hidden_dims=(32, 64), latent_dim=16),
    "vae_mlp_fashion_mnist": VAEConfig(architecture="mlp", hidden_dims=(512, 256), latent_dim=16),
    "vae_tiny": VAEConfig(architecture="mlp", hidden_dims=(32,), latent_dim=4),
}

GAN_PRESETS: dict[str, GANConfig] = {
    "gan_dcgan_fashion_mnist": GANConfig(),  # 28x28x1, Z = 64, G (64, 32), D (32, 64), tanh
    "gan_dcgan_tiny": GANConfig(latent_dim=8, generator_dims=(16, 8), discriminator_dims=(8, 16)),
    # Points in the plane (the ring of Gaussians in zoo.data.ring).
    "gan_mlp_toy": GANConfig(data_shape=(2,), latent_dim=8, architecture="mlp",
                             generator_dims=(128, 128), discriminator_dims=(128, 128),
                             output_activation="linear"),
}

# The judge of the image models' samples (zoo/generative/classifier.py).
CLASSIFIER_PRESETS: dict[str, ClassifierConfig] = {
    "classifier_cnn_fashion_mnist": ClassifierConfig(),  # (32, 64) channels, 128 features
    "classifier_tiny": ClassifierConfig(channels=(8, 16), feature_dim=16),
}
