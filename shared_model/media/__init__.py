"""Video files, the face crop, reference pictures and picture quality measures."""
