"""Training, independent of SageMaker: typed config, data, the loop, checkpoints, metric lines.

Runs against any directories on a laptop; `container/training.py` maps the /opt/ml contract onto it.
"""
