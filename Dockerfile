# One image for every role: `hookline router|sender|replay|api|topics create`.
#
#   docker build -t ghcr.io/hookline/hookline:0.1.0 .
#
# For registries elsewhere: no container engine or registry is reachable on the project's
# machines, so this file is not built there. scripts/image.sh builds the same runtime image
# without a registry (a debootstrap'd Debian base + the binary built on the host) and runs it
# with podman as the chart does (docs/image.md). Keep the two in step: the Debian release,
# the runtime packages, the user (hookline, UID/GID 65532), /usr/local/bin/hookline as the
# entrypoint, the ports. The Helm chart expects: non-root UID/GID 65532, a read-only root
# filesystem (it mounts /tmp), the binary as entrypoint, and /bin/sh, /bin/bash, cat and
# sleep (its test pod, the kafka-password init container, the api's preStop hook).

# The console and portal (services/console), embedded in the release binary.
FROM node:20-bookworm AS console
WORKDIR /src
COPY docs/openapi.json docs/openapi.json
COPY services/console services/console
RUN cd services/console && npm ci --no-audit --no-fund && npm run build

FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka is compiled from source by rdkafka-sys (make, a C compiler, libssl-dev and
# pkg-config: all in this image); protoc is vendored by the build script.
COPY . .
COPY --from=console /src/services/console/dist services/console/dist
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p hookline \
    && install -D -m 0755 target/release/hookline /out/hookline

# The binary links glibc, libgcc_s, libm, zlib and OpenSSL 3 (librdkafka's TLS) dynamically;
# ca-certificates for https endpoints and Kafka over TLS. scripts/image.sh installs the same
# packages into its debootstrap'd base, applies the same updates and makes the same user.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system -K SYS_GID_MAX=65532 --gid 65532 hookline \
    && useradd --system -K SYS_UID_MAX=65532 --uid 65532 --gid 65532 \
       --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin hookline
COPY --from=build /out/hookline /usr/local/bin/hookline
USER 65532:65532
# The admin listener (/healthz, /readyz, /metrics) and the API.
EXPOSE 9090 8080
ENTRYPOINT ["/usr/local/bin/hookline"]
CMD ["--help"]
