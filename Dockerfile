# videoassist server image. Not built in CI here (no Docker engine on these machines).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIDEOASSIST_DATA_DIR=/data \
    VIDEOASSIST_HOST=0.0.0.0 \
    VIDEOASSIST_PORT=8080

RUN useradd --system --uid 10001 --home-dir /app videoassist \
    && mkdir -p /data && chown videoassist /data && chmod 0700 /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY videoassist ./videoassist
COPY web ./web
RUN pip install --no-cache-dir -e .

USER videoassist
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
CMD ["videoassist", "serve"]
