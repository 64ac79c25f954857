"""Running the networks per frame, with torch or onnxruntime."""
