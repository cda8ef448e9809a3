# FlexiProxy in a container: a release build on Debian, then the binary alone on a slim image.
# docker build -t flexiproxy . && docker run -p 8787:8787 -v $PWD/conf:/etc/flexiproxy flexiproxy
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin flexiproxy

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 flexiproxy
COPY --from=build /src/target/release/flexiproxy /usr/local/bin/flexiproxy
USER flexiproxy
EXPOSE 8787 9787
ENTRYPOINT ["flexiproxy"]
CMD ["serve", "--config", "/etc/flexiproxy/flexiproxy.yaml"]
