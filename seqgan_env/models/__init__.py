"""Models: generator and discriminator networks, the fast decode/forward paths, sampling."""
