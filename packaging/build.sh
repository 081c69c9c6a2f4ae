#!/bin/sh
# Build birdid's desktop bundle in one command: packaging/build.sh [cpu|cuda]
#
# Makes (or reuses) a build environment in build/venv-VARIANT with only what the app needs, then
# runs PyInstaller on packaging/birdid.spec. The bundle lands in dist/birdid/ (cpu) or
# dist/cuda/birdid/ (cuda).
#
#   cpu  (default) torch's CPU build: a smaller bundle, runs on any x86-64 or arm64 machine.
#   cuda           torch's CUDA build from PyPI (Linux, Windows): uses an NVIDIA GPU when there
#                  is one, several GB larger.
#
# Environment: PYTHON (default python3), TORCH_VERSION (default 2.13.0), TORCH_CPU_INDEX (where the
# CPU build is published; default PyTorch's own index; "none" when a local wheel or find-links
# provides torch==TORCH_VERSION+cpu, as on birdid's CI machine).
set -eu

variant=${1:-cpu}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
torch_version=${TORCH_VERSION:-2.13.0}
torch_cpu_index=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
venv="$root/build/venv-$variant"
dist="$root/dist"

case "$variant" in
    cpu)
        torch_requirement="torch==$torch_version+cpu"
        if [ "$torch_cpu_index" = none ]; then index_args=""; else index_args="--extra-index-url $torch_cpu_index"; fi
        ;;
    cuda)
        torch_requirement="torch==$torch_version"
        index_args=""
        dist="$root/dist/cuda"
        ;;
    *)
        echo "packaging/build.sh: unknown variant '$variant'; use cpu or cuda" >&2
        exit 2
        ;;
esac

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# torch alone, without its dependencies, from its index: nothing else should come from there,
# and an index that cannot be reached costs seconds on every package pip asks it about. Then
# torch's dependencies and the app's others from the usual index, without torchvision (birdid
# does its own preprocessing). Then birdid itself without its dependencies, so pip cannot swap
# the chosen torch build for another.
# shellcheck disable=SC2086 # index_args is empty or two words
"$venv/bin/pip" install --quiet --no-deps $index_args "$torch_requirement"
"$venv/bin/pip" install --quiet "$torch_requirement" "PySide6-Essentials>=6.7" "pillow>=10.3" \
    "pillow-heif>=0.16" "numpy>=1.26" "platformdirs>=4" "huggingface_hub>=0.30" "rawpy>=0.21" "exiv2>=0.19" \
    "onnxruntime>=1.20" "onnx>=1.17" "onnxscript>=0.3" "openTSNE>=1.0" "reverse_geocode>=1.6" \
    "pyinstaller>=6.10"
"$venv/bin/pip" install --quiet --no-deps "$root"
if [ "$variant" = cuda ] && ! "$venv/bin/python" -c "import sys, torch; sys.exit(torch.version.cuda is None)"; then
    # pip prefers a local 2.13.0+cpu wheel (from find-links) to PyPI's 2.13.0: say so, never ship it as CUDA.
    echo "packaging/build.sh: $venv has a CPU-only torch; remove that venv and make pip see PyPI's CUDA build" >&2
    exit 1
fi

cd "$root"
"$venv/bin/pyinstaller" --noconfirm --log-level WARN --distpath "$dist" \
    --workpath "$root/build/pyinstaller-$variant" packaging/birdid.spec
echo "built $dist/birdid ($(du -sh "$dist/birdid" | cut -f1), torch $torch_requirement)"
