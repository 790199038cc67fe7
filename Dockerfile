# syntax=docker/dockerfile:1
# The todo service image: dependencies from uv.lock in a build stage, then only
# the virtual environment (runtime dependencies + the service) in a slim
# runtime stage, run as a non-root user. No tests or development tools.

FROM python:3.11.7-slim-bookworm AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /src
# Dependencies first (cached while only the code changes), from the lockfile.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
# Then the service itself, installed as a package (not editable).
COPY README.md ./
COPY generated/ generated/
COPY service/ service/
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11.7-slim-bookworm AS runtime
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin todo
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TODO_GRPC_ADDRESS=0.0.0.0:50051
USER 10001
EXPOSE 50051
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "service.probe"]
ENTRYPOINT ["python", "-m", "service"]
