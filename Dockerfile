# syntax=docker/dockerfile:1
# Tidepool sidecar image:  docker build -t tidepool .
#   docker run --rm -p 3307:3307 -p 6380:6380 -e APP_DB_PASSWORD=... \
#       -v "$PWD/my-proxy.toml:/etc/tidepool/proxy.toml:ro" tidepool
# The bundled proxy.toml is the local example (127.0.0.1 everywhere): in a container, mount a
# config that listens on 0.0.0.0 and names the real upstream hosts.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build artifacts between builds without copying a
# placeholder crate around (which breaks as soon as Cargo.toml declares benches or a build.rs).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tidepool \
    && install -D -m 0755 target/release/tidepool /out/tidepool \
    && strip --strip-debug /out/tidepool

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system tidepool \
    && useradd --system --gid tidepool --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin tidepool \
    && install -d -o tidepool -g tidepool -m 0750 /run/tidepool
COPY --from=build /out/tidepool /usr/local/bin/tidepool
COPY proxy.toml /etc/tidepool/proxy.toml
USER tidepool
EXPOSE 3307 6380
ENTRYPOINT ["tidepool"]
CMD ["run", "--config", "/etc/tidepool/proxy.toml"]
