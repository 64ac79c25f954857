"""The codec networks and their configuration."""
