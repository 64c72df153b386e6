"""Client-side AWS glue: ECR for build_and_push.sh, and what the launch/deploy CLIs share.

Runs on a laptop or CI box, never inside the image. Imports only the standard library and boto3 (no torch),
so `python -m container.aws.launch` and `python -m container.aws.deploy` work from a plain `pip install boto3`.
"""
