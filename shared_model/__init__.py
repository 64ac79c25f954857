"""Networks both ends of a call share: keypoint detector, generators, training, evaluation, export, wire format."""
