# videoassist server image: Debian 12 slim with Python 3.11, the package installed as a
# wheel (not editable), a non-root user, the data directory as a volume.
#
# Never built here: these machines have no Docker engine. tests/test_packaging.py checks
# what the image relies on (a non-editable `pip install .` serves the templates and the
# static files, and `videoassist serve` drains on SIGTERM); docs/deploy.md shows it run.
#
#   docker build -t videoassist .
#   docker run -d --name videoassist --network host --stop-timeout 3630 \
#       -v videoassist-data:/data -e VIDEOASSIST_HOST=127.0.0.1 \
#       -e VIDEOASSIST_PUBLIC_URL=https://assist.example.com \
#       -e VIDEOASSIST_TURN_URLS=turn:turn.example.com:3478?transport=udp videoassist
#   docker logs videoassist        # the first admin's set-password link is printed there
#
# --network host: aiortc answers media on ephemeral UDP ports of the addresses it sees,
# which behind Docker's NAT would be the container's own; see docs/deploy.md.
# --stop-timeout: docker stop sends SIGTERM, and the server drains (calls in progress go
# on for up to VIDEOASSIST_DRAIN_TIMEOUT_S, 3600 s); give it that long plus a margin, or
# Docker kills it after 10 s and cuts the calls. Compose: stop_grace_period: 3630s.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
# The build backend from the lock, checked by hash; then the project, with no dependencies
# and no isolated build environment, so that nothing is fetched outside the lock.
COPY requirements ./requirements
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/serve.txt
COPY pyproject.toml README.md ./
COPY videoassist ./videoassist
COPY web ./web
# videoassist/web is a link to ../web: the wheel carries the files it points at.
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIDEOASSIST_DATA_DIR=/data \
    VIDEOASSIST_HOST=0.0.0.0 \
    VIDEOASSIST_PORT=8080 \
    VIDEOASSIST_LOG_FORMAT=json

# The fonts snapshot labels are drawn in (Latin, Greek, Cyrillic, Arabic, Hebrew,
# Devanagari; CJK is the bulk of it, about 90 MB) and FriBiDi, which Pillow's text
# shaping loads at run time. The server refuses to start without them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-core fonts-noto-cjk libfribidi0 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent videoassist \
    && mkdir -p /data && chown videoassist /data && chmod 0700 /data

# Exactly the versions requirements/serve.txt pins, each file checked against its hash.
COPY requirements/serve.txt /tmp/serve.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/serve.txt && rm /tmp/serve.txt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels

USER videoassist
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# An image cannot raise the descriptor limit: run it with --ulimit nofile=65536:65536
# (Compose: ulimits: nofile), as docs/deploy.md does; every participant holds sockets.
STOPSIGNAL SIGTERM
# /healthz (alive), not /readyz: a draining server is healthy and must not be restarted.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('VIDEOASSIST_PORT', '8080'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status != 200)"]
CMD ["videoassist", "serve"]
