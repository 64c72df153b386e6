"""Surface-normal estimation: RGB image in, per-pixel camera-space unit normals out.

The family class is ``model.normals.family:SurfaceNormals``; this package imports nothing eagerly so
``model.normals.config`` stays usable without torch.
"""
