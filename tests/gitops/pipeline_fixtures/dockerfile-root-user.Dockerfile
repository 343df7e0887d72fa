# No USER in the final stage: the container runs as root.
FROM python:3.11.14-slim-bookworm
CMD ["python", "-c", "print('hello')"]
