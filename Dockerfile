# syntax=docker/dockerfile:1
#
# tunerpool in a container: `docker build -t tunerpool .`, then
# `docker run -d -p 8080:8080 -v tunerpool-data:/data -e TUNERPOOL_ADMIN_TOKEN=… tunerpool`
# (README, *Deploy*). Needs BuildKit (the default builder since Docker 23).

# The toolchain: Cargo.toml's rust-version, the oldest Rust that builds
# Cargo.lock (a test in .ci/run keeps the two equal).
ARG RUST_VERSION=1.88

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /build
# Every workspace member must be present for cargo to read the workspace;
# testdata/media is compiled into the binary (the demo's simulated provider).
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY testdata/media testdata/media
# The dist profile (Cargo.toml): fat LTO, one codegen unit, stripped. Slow to
# link (tens of minutes on 2 cores); the cache mounts keep the registry and
# the compiled dependencies between builds. The target dir is a cache mount,
# so the binary is copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --locked --profile dist -p tunerpool --bin tunerpool \
    && install -m 0755 target/dist/tunerpool /usr/local/bin/tunerpool

FROM debian:bookworm-slim
# ca-certificates: providers and webhooks over HTTPS (rustls reads the
# system's roots). curl: the HEALTHCHECK below (about 5 MiB). ffmpeg: for the
# transcoding profiles that are coming; nothing in tunerpool runs it yet, and
# it costs about 450 MiB (190 packages, mostly Mesa and LLVM through
# libavdevice; apt-get -s on bookworm): build with --build-arg WITH_FFMPEG=0
# for an image of about 100 MiB.
ARG WITH_FFMPEG=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
       $([ "$WITH_FFMPEG" = 1 ] && echo ffmpeg) \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged user of its own; /data (the database, the admin token,
# guides) is its home and is made 0700 like tunerpool makes its data dir.
RUN groupadd --system --gid 10001 tunerpool \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin tunerpool \
    && install -d -o 10001 -g 10001 -m 0700 /data

COPY --from=builder /usr/local/bin/tunerpool /usr/local/bin/tunerpool
COPY LICENSE-MIT LICENSE-APACHE /usr/share/doc/tunerpool/

# Configuration is TUNERPOOL_* variables (`tunerpool config reference` lists
# them); a file can be mounted and named with TUNERPOOL_CONFIG.
ENV TUNERPOOL_DATA_DIR=/data \
    TUNERPOOL_LISTEN=0.0.0.0:8080
VOLUME /data
WORKDIR /data
USER 10001:10001
EXPOSE 8080

# /healthz is open (no token) and checks the store (and Redis in cluster
# mode): 503, naming what is down, makes curl -f fail. The port follows
# TUNERPOOL_LISTEN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${TUNERPOOL_LISTEN##*:}/healthz" || exit 1

LABEL org.opencontainers.image.title="tunerpool" \
      org.opencontainers.image.description="IPTV gateway that pools provider accounts and shares streams" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"

ENTRYPOINT ["tunerpool"]
CMD ["serve"]
