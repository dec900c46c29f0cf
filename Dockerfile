# greenlight container image: build with the locked dependency set, run as an
# unprivileged user on slim Debian. Certificates live on a volume so that
# generated and ACME certificates survive container restarts.
#
#   docker build -t greenlight .
#   docker run -p 80:8080 -p 443:8443 -v gl-certs:/var/lib/greenlight/certs \
#     -v ./greenlight.yaml:/etc/greenlight/greenlight.yaml:ro greenlight

FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
COPY src ./src
COPY config ./config
COPY tests ./tests
COPY benches ./benches
RUN cargo build --release --locked --bin greenlight

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/greenlight --create-home greenlight \
    && mkdir -p /etc/greenlight /var/lib/greenlight/certs \
    && chown -R greenlight:greenlight /var/lib/greenlight
COPY --from=build /src/target/release/greenlight /usr/local/bin/greenlight
COPY config/greenlight.yaml /etc/greenlight/greenlight.yaml
USER greenlight
WORKDIR /var/lib/greenlight
VOLUME ["/var/lib/greenlight/certs"]
# Inside the container, listen on all interfaces on unprivileged ports and map
# them with -p; the embedded default binds loopback only, so mount a config.
EXPOSE 8080 8443
ENTRYPOINT ["greenlight"]
CMD ["run", "-c", "/etc/greenlight/greenlight.yaml"]
