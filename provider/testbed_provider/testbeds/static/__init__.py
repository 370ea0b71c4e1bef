"""The static backend: machines that already exist, reached over SSH (EnOSlib's Static)."""
