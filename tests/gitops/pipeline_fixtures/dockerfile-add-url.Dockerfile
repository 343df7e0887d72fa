FROM python:3.11.14-slim-bookworm
# Fetched at build time, unverified.
ADD https://example.com/tool.tar.gz /opt/
USER 10001
