"""The models shipped inside lsr (installed as ``lsr.shipped_models``): ``inference-free-minilm``, the default
sparse encoder, found through :data:`lsr.defaults.DEFAULT_SPARSE` in a checkout and in an installed wheel alike."""
