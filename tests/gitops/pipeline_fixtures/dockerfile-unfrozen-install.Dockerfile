FROM python:3.11.14-slim-bookworm AS builder
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
COPY . /src
# Re-resolves instead of installing what uv.lock says, and brings the dev tools along.
RUN cd /src \
    && uv sync
FROM python:3.11.14-slim-bookworm
COPY --from=builder /src/.venv /app/.venv
USER 10001
