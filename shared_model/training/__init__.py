"""Training data, losses and synthetic faces."""
