# syntax=docker/dockerfile:1
# berth's container image: built from source in a Rust image, run from an empty image that holds
# only the binary, the C runtime libraries it links (glibc, libgcc_s) and CA certificates.
# See docs/container-image.md.

FROM rust:1.94.1-slim-bookworm AS build
# jemalloc (berth's allocator) is built from its C sources with make
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The same cargo invocation as the release build documented in docs/container-image.md; the
# caches keep downloaded crates and compiled dependencies between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin berth \
    && install -D -m 0755 target/release/berth /rootfs/usr/local/bin/berth
# The runtime image has no package manager: take the shared libraries the binary needs (as ldd
# lists them, whatever the architecture) and the CA bundle that rustls reads from this image.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN ldd /rootfs/usr/local/bin/berth \
    | grep -o '/[^ ]*' \
    | xargs -I{} cp --parents -L {} /rootfs/ \
    && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt

FROM scratch
COPY --from=build /rootfs/ /
ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# nonroot in distroless images; no passwd entry is needed for a numeric user.
USER 65532:65532
# metrics and health probes (the chart passes --metrics-addr/--health-addr on all interfaces)
EXPOSE 8080 8081
ENTRYPOINT ["berth", "run"]
