"""Networks: the 2D MLP (:mod:`~cmtutor.nets.mlp`), the U-Net (:mod:`~cmtutor.nets.unet`), and building
either from a config, wrapped in its preconditioning (:mod:`~cmtutor.nets.build`)."""
