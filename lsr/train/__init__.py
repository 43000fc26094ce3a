"""Training objectives for learned sparse encoders: ranking losses, distillation and sparsity regularisers."""
