# One image for every role: `hookline router|sender|replay|api|topics create`.
#
#   docker build -t ghcr.io/hookline/hookline:0.1.0 .
#
# Not built in CI (the CI machine has no container engine); the Helm chart expects this
# image: non-root UID/GID 65532, a read-only root filesystem, the binary as entrypoint.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka is compiled from source by rdkafka-sys (make, a C compiler, libssl-dev and
# pkg-config: all in this image); protoc is vendored by the build script.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p hookline \
    && install -D -m 0755 target/release/hookline /out/hookline

# The binary links glibc, libgcc_s, libm, zlib and OpenSSL 3 (librdkafka's TLS) dynamically.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates zlib1g libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/hookline /usr/local/bin/hookline
USER 65532:65532
# The admin listener (/healthz, /readyz, /metrics) and the API.
EXPOSE 9090 8080
ENTRYPOINT ["/usr/local/bin/hookline"]
CMD ["--help"]
