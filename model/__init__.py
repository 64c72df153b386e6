"""Model side of the seam: pure PyTorch plus the data format, no SageMaker and no environment reads.

The plumbing (`train/`, `serve/`, `container/`) only uses :class:`model.family.ModelFamily` and the
helpers in this package; swapping in another model means writing another family.
"""
