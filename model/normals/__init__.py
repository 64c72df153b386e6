"""Surface-normal estimation: RGB image in, per-pixel camera-space unit normals out."""

from model.normals.family import SurfaceNormals

__all__ = ["SurfaceNormals"]
