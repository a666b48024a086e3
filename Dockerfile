# CPU image: the newest TensorFlow (CPU wheel), NumPy 2 and CPU JAX that pip resolves.
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
