"""Serving: the predictor seam, content-type codecs, dynamic batching and the Flask app (no SageMaker env here)."""
