# greenlight container image: built with the locked dependency set (no cmake:
# Rust and its C compiler are all the build needs), run as an unprivileged
# user on slim Debian. README, "Container", says how to run and configure it.
#
#   docker build -t greenlight .
#   docker run -d --name gl -p 80:8080 -p 443:8443 \
#     -v gl-certs:/var/lib/greenlight/certs -v "$PWD/deploy:/etc/greenlight" greenlight
#   docker exec gl greenlight switch app green --wait   # the admin API is inside
#   docker stop -t 35 gl    # SIGTERM drains: give it more than shutdown_timeout (30s)

FROM rust:1-bookworm AS build
WORKDIR /src
# The whole source tree minus .dockerignore: Cargo.toml names the test, bench
# and example targets, so their files must be there even for one binary.
COPY . .
RUN cargo build --release --locked --bin greenlight

FROM debian:bookworm-slim
# ca-certificates: ACME directories and HTTPS upstreams are verified against
# the system roots.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/greenlight \
       --create-home --shell /usr/sbin/nologin greenlight \
    && mkdir -p /etc/greenlight /var/lib/greenlight/certs \
    && chown greenlight:greenlight /etc/greenlight /var/lib/greenlight/certs
COPY --from=build /src/target/release/greenlight /usr/local/bin/greenlight
# The image's own configuration: every interface on 8080/8443, the admin API on
# the container's loopback, certificates in the volume. Mounting a directory
# over /etc/greenlight replaces it (`switch` rewrites the file in place, so the
# directory must be writable by uid 10001).
COPY --chown=greenlight:greenlight config/container.yaml /etc/greenlight/greenlight.yaml
USER greenlight
WORKDIR /var/lib/greenlight
VOLUME ["/var/lib/greenlight/certs"]
EXPOSE 8080 8443
# SIGTERM (what `docker stop` sends) drains: in-flight requests finish, then
# the process exits, at most shutdown_timeout later.
STOPSIGNAL SIGTERM
# Healthy while the admin API answers; -c takes its address and token from
# the configuration in use, the image's own or a mounted one.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["greenlight", "status", "-c", "/etc/greenlight/greenlight.yaml"]
ENTRYPOINT ["greenlight"]
CMD ["run", "-c", "/etc/greenlight/greenlight.yaml"]
