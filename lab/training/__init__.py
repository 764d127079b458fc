"""Training: the autoencoder, latent pre-encoding, and the DiT with its text encoder.

Everything here runs on a 2-core CPU in minutes for tests (tiny configs) and within one session
for the shipped model; runs are resumable from their last checkpoint and deterministic per seed.
"""
