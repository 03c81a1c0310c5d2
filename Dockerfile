# tradeloom: one image for every role (serve, coordinator, worker, bridge, trader).
#
#   docker build -t tradeloom .
#   docker run -p 8080:8080 -v tradeloom-data:/var/lib/tradeloom tradeloom            # embedded
#   docker compose -f deploy/compose.yaml up                                        # a cluster
#
# Stage 1 builds the release binary; stage 2 is a slim Debian with the binary, CA certificates
# (outbound HTTPS to LLM providers) and curl (the health check), running as an unprivileged user.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Manifests first: the dependency layer is cached until Cargo.toml/Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
RUN cargo build --release --locked -p tradeloom \
 && strip target/release/tradeloom \
 && cp target/release/tradeloom /usr/local/bin/tradeloom

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tradeloom \
 && useradd --system --uid 10001 --gid tradeloom --home-dir /var/lib/tradeloom --shell /usr/sbin/nologin tradeloom \
 && mkdir -p /var/lib/tradeloom \
 && chown tradeloom:tradeloom /var/lib/tradeloom
COPY --from=build /usr/local/bin/tradeloom /usr/local/bin/tradeloom
USER tradeloom:tradeloom
WORKDIR /var/lib/tradeloom
ENV TRADELOOM_DATA_DIR=/var/lib/tradeloom \
    TRADELOOM_ADDR=0.0.0.0:8080 \
    TRADELOOM_LOG_FORMAT=json
VOLUME ["/var/lib/tradeloom"]
EXPOSE 8080
# `/health` answers 200 while the store answers; a process without the api role (coordinator,
# worker) overrides this check in compose/Kubernetes (it has no port).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health >/dev/null || exit 1
# tini reaps children and forwards SIGTERM: `docker stop` is a graceful stop (exit 0).
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/tradeloom"]
CMD ["up"]
