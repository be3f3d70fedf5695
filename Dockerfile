# syntax=docker/dockerfile:1
# Tripwire image: the three binaries (tripwire-indexer, tripwire-watchdog, tripwire-replay) on a
# small Debian runtime, run as an unprivileged user. `--target demo` adds the devnet driver and the
# contract artifacts for the compose file's demo profile.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# librdkafka is built from source by rdkafka-sys (make, a C compiler and zlib, all in this image).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release \
        --config profile.release.debug=0 --config profile.release.strip=true \
        --bin tripwire-indexer --bin tripwire-watchdog --bin tripwire-replay --bin tripwire-devnet \
 && mkdir -p /out \
 && cp target/release/tripwire-indexer target/release/tripwire-watchdog \
       target/release/tripwire-replay target/release/tripwire-devnet /out/

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates for https RPC providers and the Safe Transaction Service; curl for health checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tripwire \
 && useradd --system --uid 10001 --gid tripwire --home-dir /nonexistent --shell /usr/sbin/nologin tripwire
COPY --from=build /out/tripwire-indexer /out/tripwire-watchdog /out/tripwire-replay /usr/local/bin/
USER 10001:10001
ENV TRIPWIRE_LOG_FORMAT=json
EXPOSE 9464 9465 9466
CMD ["tripwire-indexer", "--help"]

# The Safe v1.4.1 artifacts the devnet driver deploys, from the same npm package the tests use.
FROM node:20-${DEBIAN_RELEASE}-slim AS safe-artifacts
WORKDIR /safe
RUN npm install --no-save --no-audit --no-fund @safe-global/safe-contracts@1.4.1

FROM runtime AS demo
# The driver finds its artifacts under the build's source root (/src), as in a checkout.
COPY --from=build /out/tripwire-devnet /usr/local/bin/
COPY contracts/out /src/contracts/out
COPY --from=safe-artifacts /safe/node_modules/@safe-global/safe-contracts/build/artifacts/contracts \
     /src/tools/node_modules/@safe-global/safe-contracts/build/artifacts/contracts
CMD ["tripwire-devnet", "--help"]
