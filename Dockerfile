# One image for SageMaker training (`train`) and serving (`serve`), CPU or NVIDIA GPU.
#
#   docker build -t byoc .                                  # CPU, public base image, PyPI
#   docker build --build-arg VARIANT=gpu -t byoc:gpu .      # CUDA build of torch (no driver inside)
#   docker build --build-arg BASE_IMAGE=byoc-base:bookworm -t byoc .   # offline: see container/scripts/
#
# With wheels in ./wheelhouse (container/scripts/make-wheelhouse.sh) nothing is fetched from PyPI.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- stage 1: a virtualenv with the dependencies (wheelhouse and build tools stay here) ----
FROM ${BASE_IMAGE} AS deps
ARG VARIANT=cpu
# 1 keeps what torch.compile needs (torch's C++ headers, triton) and adds g++ to the runtime stage.
ARG TORCH_COMPILE=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY container/requirements.txt /tmp/requirements.txt
COPY wheelhouse/ /tmp/wheelhouse/
RUN set -eu; \
    python3 -m venv /opt/venv; \
    if ls /tmp/wheelhouse/*.whl >/dev/null 2>&1; then \
        /opt/venv/bin/pip install --no-index --find-links /tmp/wheelhouse -r /tmp/requirements.txt; \
    else \
        case "$VARIANT" in \
            cpu) index="--extra-index-url https://download.pytorch.org/whl/cpu" ;; \
            gpu) index="" ;; \
            *) echo "VARIANT must be cpu or gpu, got '$VARIANT'" >&2; exit 1 ;; \
        esac; \
        # sagemaker-training ships as source with a C extension: it needs a compiler to install.
        apt-get update; apt-get install -y --no-install-recommends gcc libc6-dev; \
        /opt/venv/bin/pip install --upgrade pip wheel; \
        /opt/venv/bin/pip install $index -r /tmp/requirements.txt; \
    fi; \
    # A wheelhouse built for the other variant would silently give the wrong torch: refuse it.
    /opt/venv/bin/python -c "import sys, torch; cuda = torch.version.cuda; \
print('torch', torch.__version__, 'cuda', cuda); \
sys.exit(0 if (cuda is None) == ('$VARIANT' == 'cpu') else \
'VARIANT=$VARIANT but torch ' + torch.__version__ + ' was installed: rebuild the wheelhouse for this variant')"; \
    # Image size is a feature. scipy (110 MB) comes with sagemaker-training only for its serving-side
    # encoders; the training path we use never imports it (tests/container check that train works).
    /opt/venv/bin/pip uninstall -y -q scipy; \
    site=$(echo /opt/venv/lib/python3*/site-packages); \
    # torch's C++ test binaries/libraries and protoc, test suites, and the pip bootstrap are dead weight.
    # torch/test (83 MB) holds compiled C++ tests. torch/include (62 MB), networkx and triton (GPU) are only
    # used when torch.compile generates code, which also needs a compiler the default image does not carry:
    # `compile=true` is refused early there (train/loop.py); build with TORCH_COMPILE=1 to keep them.
    find "$site/torch/bin" -type f ! -name torch_shm_manager -delete; \
    rm -rf "$site/torch/test"; \
    if [ "$TORCH_COMPILE" != 1 ]; then \
        rm -rf "$site/torch/include" "$site/triton" "$site"/triton-*.dist-info "$site/networkx"; \
    fi; \
    # botocore carries the API models of ~450 AWS services (28 MB); inside the image only the training
    # toolkit calls AWS, and only S3 (and STS for credentials). Other services' models are never read.
    find "$site/botocore/data" -mindepth 1 -maxdepth 1 -type d ! -name s3 ! -name sts -exec rm -rf {} +; \
    # CUDA packages ship headers and static libraries for building against them; torch loads only .so files.
    if [ -d "$site/nvidia" ]; then \
        find "$site/nvidia" -depth -type d -name include -exec rm -rf {} +; \
        find "$site/nvidia" -type f -name '*.a' -delete; \
        # Shared libraries outside the closure of what torch's libraries link (readelf NEEDED) or dlopen
        # (cuDNN's sub-libraries, NVRTC's builtins, NVSHMEM's transports): multi-GPU cuSOLVER, the
        # alternative NVRTC build, the profiler's perf-counter libraries, cuFFTW, NVBLAS (~260 MB).
        find "$site/nvidia" -type f \( -name 'libcusolverMg.so*' -o -name 'libnvrtc*.alt.so*' \
            -o -name 'libnvperf_*.so' -o -name 'libcheckpoint.so' -o -name 'libcufftw.so*' \
            -o -name 'libnvblas.so*' -o -name 'libpcsamplingutil.so' \) -delete; \
    fi; \
    rm -f "$site"/torch/lib/lib*test*.so "$site"/torch/lib/libbackend_with_compiler.so \
        "$site"/torch/lib/libaoti_custom_ops.so; \
    find "$site" -depth -type d \( -name tests -o -name test \) -not -path '*/torch/*' -exec rm -rf {} +; \
    rm -rf "$site/pip" "$site/setuptools"

# ---- stage 2: the runtime image ----
FROM ${BASE_IMAGE}
ARG VARIANT=cpu
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      org.opencontainers.image.title="sagemaker-byoc-surface-normals" \
      byoc.variant="${VARIANT}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/opt/program
ARG TORCH_COMPILE=0
RUN if [ "$TORCH_COMPILE" = 1 ]; then \
        apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=deps /opt/venv /opt/venv
# Code last: a code change rebuilds only these layers.
COPY model /opt/program/model
COPY train /opt/program/train
COPY serve /opt/program/serve
COPY container /opt/program/container
RUN /opt/venv/bin/python -m compileall -q /opt/program
WORKDIR /opt/program
EXPOSE 8080
# Exec form: PID 1 is our launcher, so SIGTERM from SageMaker reaches it (see container/__main__.py).
ENTRYPOINT ["/opt/venv/bin/python", "-m", "container"]
CMD ["train"]
