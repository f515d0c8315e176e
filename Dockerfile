# sockscript in a container: built with the Rust toolchain, run from a small Debian image that
# holds the binary, CA certificates (for TLS to real services) and a non-root user.
#
#   docker build -t sockscript .
#   docker run --rm --network host -v "$PWD/smoke:/work:ro" sockscript --test /work --var host=127.0.0.1

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && strip target/release/sockscript

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --shell /usr/sbin/nologin sockscript
COPY --from=build /src/target/release/sockscript /usr/local/bin/sockscript
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["sockscript"]
CMD ["--help"]
