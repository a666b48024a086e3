# CPU image: the pinned TensorFlow 2.16 / tensorflow-io 0.37 stack with CPU JAX.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/kc2f
COPY pyproject.toml README.md ./
COPY kc2f ./kc2f
COPY configs ./configs
COPY tools ./tools
RUN pip install ".[jax]"
WORKDIR /work
ENTRYPOINT ["kc2f"]
CMD ["--help"]
