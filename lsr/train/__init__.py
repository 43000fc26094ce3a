"""Training sparse encoders: losses, teacher ensembles, the trainer, MLM warm-up and label-free adaptation."""
