FROM python:3.11.14-slim-bookworm
RUN pip install --no-cache-dir requests
USER 10001
