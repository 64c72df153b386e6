#!/usr/bin/env bash
# Build the training+serving image for linux/amd64 (CPU or GPU variant) and push it to Amazon ECR or any
# registry. Progress goes to stderr; the last line on stdout is the full image URI, so
#   image=$(./build_and_push.sh)
# captures it. Needs Docker and, for ECR, Python with boto3 (no AWS CLI): see container/aws/ecr.py.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: ./build_and_push.sh [options] [NAME]

Builds the image from this repository for linux/amd64, tags it with the git short SHA (plus "-dirty" when
files that go into the image have uncommitted changes) and "latest", pushes both tags, and prints the full
image URI (the SHA tag) as the last line of stdout.

  NAME                    repository / image name (default: sagemaker-byoc-normals)
  --variant cpu|gpu       torch build to install (default: cpu). GPU tags get a "-gpu" suffix
                          (SHA-gpu, latest-gpu) so both variants live in one repository.
  --region REGION         ECR region (default: AWS_REGION, AWS_DEFAULT_REGION, then ~/.aws/config)
  --registry HOST[:PORT]  push to this registry instead of ECR (no AWS calls), e.g. localhost:5000
  --no-push               only build and tag locally (no AWS calls, no registry)
  --base-image IMAGE      base image for the build (default: the Dockerfile's python:3.11-slim-bookworm);
                          for offline hosts see container/scripts/make-base-image.sh
  --build-arg KEY=VALUE   extra docker build argument (repeatable)
  --platform PLATFORM     target platform (default: linux/amd64, what SageMaker runs)
  -h, --help              show this help

Environment: PYTHON (interpreter with boto3 for the ECR steps; default python3), DOCKER (default docker).
Wheels in ./wheelhouse (container/scripts/make-wheelhouse.sh [PYTHON] cpu|gpu) are used automatically:
nothing is fetched from PyPI during the build, and a wheelhouse of the other variant is refused.

Examples:
  ./build_and_push.sh                                   # CPU image -> ECR in your default region
  ./build_and_push.sh --variant gpu --region eu-west-1  # GPU image -> ECR eu-west-1
  ./build_and_push.sh --registry localhost:5000         # any registry
  ./build_and_push.sh --no-push --base-image byoc-base:bookworm
EOF
}

die() { # what, fix[, exit code]
  printf 'error: %s\nfix: %s\n' "$1" "$2" >&2
  exit "${3:-1}"
}
say() { printf '==> %s\n' "$*" >&2; }

name=sagemaker-byoc-normals
variant=cpu
region=""
registry=""
push=1
base_image=""
platform=linux/amd64
build_args=()
python=${PYTHON:-python3}
docker=${DOCKER:-docker}

while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --variant) variant=${2:?--variant needs cpu or gpu}; shift 2 ;;
    --variant=*) variant=${1#*=}; shift ;;
    --region) region=${2:?--region needs a value}; shift 2 ;;
    --region=*) region=${1#*=}; shift ;;
    --registry) registry=${2:?--registry needs HOST[:PORT]}; shift 2 ;;
    --registry=*) registry=${1#*=}; shift ;;
    --no-push) push=0; shift ;;
    --base-image) base_image=${2:?--base-image needs an image}; shift 2 ;;
    --base-image=*) base_image=${1#*=}; shift ;;
    --build-arg) build_args+=(--build-arg "${2:?--build-arg needs KEY=VALUE}"); shift 2 ;;
    --build-arg=*) build_args+=(--build-arg "${1#*=}"); shift ;;
    --platform) platform=${2:?--platform needs a value}; shift 2 ;;
    --platform=*) platform=${1#*=}; shift ;;
    -*) usage >&2; die "unknown option $1" "see the options above" 2 ;;
    *) name=$1; shift ;;
  esac
done

case $variant in
  cpu) suffix="" ;;
  gpu) suffix="-gpu" ;;
  *) die "--variant must be cpu or gpu, got '$variant'" "pass --variant cpu or --variant gpu" 2 ;;
esac
if [[ ! $name =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]]; then
  die "'$name' is not a valid repository name" "use lower-case letters, digits and . _ - / (e.g. my-model)" 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")"

# --- Docker engine -------------------------------------------------------------------------------------
if ! command -v "$docker" >/dev/null 2>&1; then
  die "the docker command is not installed" "install Docker (https://docs.docker.com/engine/install/)"
fi
if ! info_err=$("$docker" info 2>&1 >/dev/null); then
  die "no Docker engine answers ($(printf '%s' "$info_err" | grep -m1 -i -E 'error|cannot|permission' || echo 'docker info failed'))" \
    "start Docker (Docker Desktop, 'sudo systemctl start docker', or container/scripts/ensure-docker.sh); check DOCKER_HOST and that you may use /var/run/docker.sock (docker group)"
fi

# --- tags ------------------------------------------------------------------------------------------------
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if sha=$(git rev-parse --short HEAD 2>/dev/null); then
  # Dirty = uncommitted changes (or new files) in what goes into the image, so a SHA tag never lies.
  if [[ -n $(git status --porcelain -- Dockerfile .dockerignore container model train serve 2>/dev/null) ]]; then
    sha="$sha-dirty"
  fi
else
  sha="nogit-$(date -u +%Y%m%d%H%M%S)"
fi
tag="$sha$suffix"
latest="latest$suffix"

# --- build -----------------------------------------------------------------------------------------------
# OCI labels say which commit an image came from (`docker inspect`), wherever it is pulled.
args=(build --platform "$platform" --build-arg "VARIANT=$variant"
  --label "org.opencontainers.image.revision=$revision" --label "org.opencontainers.image.version=$tag")
if [[ -n $base_image ]]; then
  args+=(--build-arg "BASE_IMAGE=$base_image")
fi
# ${arr[@]+"${arr[@]}"}: macOS bash 3.2 under `set -u` calls an empty "${arr[@]}" an unbound variable.
args+=(${build_args[@]+"${build_args[@]}"} -t "$name:$tag" -t "$name:$latest" .)
if compgen -G "wheelhouse/*.whl" >/dev/null; then
  if [[ $variant == gpu ]] && compgen -G "wheelhouse/torch-*+cpu-*.whl" >/dev/null; then
    die "wheelhouse/ holds a CPU-only torch wheel, so a GPU build would silently get CPU torch" \
      "refill it with the CUDA wheels: container/scripts/make-wheelhouse.sh python3 gpu"
  fi
  if [[ $variant == cpu ]] && ! compgen -G "wheelhouse/torch-*+cpu-*.whl" >/dev/null; then
    die "wheelhouse/ holds no CPU-only torch wheel (a GPU wheelhouse?), so a CPU build would carry CUDA torch" \
      "refill it with the CPU wheels: container/scripts/make-wheelhouse.sh python3 cpu"
  fi
  say "building $name:$tag ($variant, $platform) with wheels from ./wheelhouse (offline)"
else
  say "building $name:$tag ($variant, $platform); dependencies come from PyPI"
fi
if ! "$docker" "${args[@]}" >&2; then
  die "docker build failed (see its output above)" \
    "fix the failing step; offline hosts need --base-image (container/scripts/make-base-image.sh) and wheelhouse/"
fi
# The classic builder takes --platform but does not check a local base image against it: verify the result.
built=$("$docker" image inspect --format '{{.Os}}/{{.Architecture}}' "$name:$tag")
if [[ $built != "$(cut -d/ -f1,2 <<<"$platform")" ]]; then
  die "the image was built for $built, not $platform (the base image is $built)" \
    "use a $platform base image, or build with BuildKit/buildx which emulates $platform"
fi

if [[ $push == 0 ]]; then
  say "built $name:$tag and $name:$latest (not pushed: --no-push)"
  echo "$name:$tag"
  exit 0
fi

# --- registry --------------------------------------------------------------------------------------------
if [[ -n $registry ]]; then
  remote="$registry/$name"
else
  if ! "$python" -c 'import boto3' >/dev/null 2>&1; then
    die "$python cannot import boto3, which the ECR steps need" \
      "pip install boto3 (or set PYTHON=/path/to/python that has it), or push elsewhere with --registry"
  fi
  # prepare: checks credentials (STS), creates the repository with scan-on-push; prints key=value lines.
  region_args=()
  if [[ -n $region ]]; then
    region_args=(--region "$region")
  fi
  # The helper prints error:/fix: itself; stop with its exit code.
  info=$("$python" -m container.aws.ecr prepare "$name" ${region_args[@]+"${region_args[@]}"}) || exit $?
  remote=$(sed -n 's/^repository_uri=//p' <<<"$info")
  host=$(sed -n 's/^registry=//p' <<<"$info")
  say "logging in to $host"
  if ! "$python" -m container.aws.ecr login-password ${region_args[@]+"${region_args[@]}"} \
    | "$docker" login --username AWS --password-stdin "$host" >&2; then
    die "docker login to $host failed" \
      "check the output above; the credentials need ecr:GetAuthorizationToken (container/aws/iam-policy.json)"
  fi
fi

push_log=$(mktemp)
trap 'rm -f "$push_log"' EXIT
for t in "$tag" "$latest"; do
  "$docker" tag "$name:$tag" "$remote:$t"
  say "pushing $remote:$t"
  if ! "$docker" push "$remote:$t" 2>&1 | tee "$push_log" >&2; then
    if grep -q -i -E 'denied|unauthorized|authentication required|no basic auth|forbidden' "$push_log"; then
      die "the registry refused the push of $remote:$t (access denied)" \
        "log in again (ECR tokens last 12 h), check the repository's region/account, and that your IAM policy allows ecr:InitiateLayerUpload, ecr:UploadLayerPart, ecr:CompleteLayerUpload, ecr:PutImage, ecr:BatchCheckLayerAvailability (container/aws/iam-policy.json)"
    fi
    die "docker push of $remote:$t failed (see above)" "check that $remote is reachable and retry"
  fi
done
say "pushed $remote:$tag and $remote:$latest"
echo "$remote:$tag"
