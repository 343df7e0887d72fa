# No tag means `latest`: the image changes under the same Dockerfile.
FROM python
USER 10001
