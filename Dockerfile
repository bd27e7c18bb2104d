# The mvirt build environment: Debian 12 with every package scripts/bootstrap.sh installs.
# `make docker` builds this image and runs `make iso` in it as the calling user, with the
# checkout mounted at its own path (so the virtualenv works inside and outside alike).
FROM debian:12

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8

# bootstrap.sh and what it reads; the rest of the checkout is mounted when the container runs.
COPY scripts/bootstrap.sh /opt/mvirt-bootstrap/scripts/bootstrap.sh
COPY builder/mvirt_build/apt_sources.py /opt/mvirt-bootstrap/builder/mvirt_build/apt_sources.py

# The system packages only: the virtualenv belongs to the checkout and is made on first use.
RUN MVIRT_BOOTSTRAP_SYSTEM_ONLY=1 /opt/mvirt-bootstrap/scripts/bootstrap.sh \
    && rm -rf /var/lib/apt/lists/*

# Any user may run the build: the caches live in the mounted MVIRT_CACHE_DIR.
ENV HOME=/tmp
CMD ["make", "iso"]
