# Guidepost production image: the server only (the serve extra; no tools, no tests).
# Build: docker build -t guidepost .
# Run:   docker run -p 5000:5000 -v guidepost-models:/app/model_cache guidepost
# GPU:   add --gpus all (the pinned torch wheel from PyPI is a CUDA build).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# nginx: the buffering front that the gunicorn master starts in front of its private socket (README: "Running it on
# the internet"). It runs as the unprivileged user below, with every file in its own folder under /tmp.
RUN apt-get update && apt-get install -y --no-install-recommends nginx && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
# torch first, pinned as in requirements.txt, so no later package swaps its build (its own layer: GBs, rarely changes).
RUN pip install $(grep -E '^torch(vision)?==' requirements.txt)

COPY pyproject.toml README.md wsgi.py gunicorn.conf.py ./
COPY guidepost/ guidepost/
# The tools' CLI modules are small and import their stack only when run; flask lists their commands.
COPY guidepost_tools/ guidepost_tools/
COPY models/ models/
COPY prompts/ prompts/
RUN pip install -c requirements.txt -e '.[serve]'

RUN useradd --create-home --uid 10001 guidepost \
    && mkdir -p /app/model_cache \
    && chown guidepost:guidepost /app/model_cache
USER guidepost

# Weights download here on first start; keep them in a volume so a restart does not fetch them again.
VOLUME /app/model_cache
ENV PORT=5000 GUIDEPOST_MODEL_CACHE=/app/model_cache HF_HOME=/app/model_cache/hf-home
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '5000'), timeout=4)"
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
