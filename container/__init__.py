"""The only SageMaker-aware code: the /opt/ml contract, the `train`/`serve` launcher, gunicorn config."""
