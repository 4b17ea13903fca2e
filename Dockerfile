# One image for every planhat-sync process: web, worker, beat and the sandbox.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY connectors ./connectors
COPY state ./state
COPY worker ./worker
RUN pip install . && useradd --create-home --uid 10001 planhat-sync
USER planhat-sync
EXPOSE 8765
CMD ["planhat-sync", "web", "--host", "0.0.0.0", "--port", "8765"]
