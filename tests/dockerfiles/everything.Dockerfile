# escape=\
ARG BASE=busybox:1
ARG VERSION=1.0

# The build stage.
FROM ${BASE} AS build
ARG VERSION
ARG JOBS=4
ENV PATH=/usr/local/bin:$PATH \
    GREETING="hello world"
WORKDIR /src
COPY --chown=1000:1000 --chmod=644 --exclude=*.md src/ ./
RUN --mount=type=cache,target=/root/.cache,id=c,sharing=locked \
    --mount=type=tmpfs,target=/tmp,size=64m \
    --network=none \
    make -j$JOBS VERSION=$VERSION
RUN ["/bin/busybox", "echo", "exec form"]
RUN <<EOF
echo one
echo two
EOF
USER app:app
SHELL ["/bin/sh", "-ec"]

FROM scratch AS final
ARG VERSION
COPY --from=build --link /src/out /app
COPY --from=0 /etc/passwd /etc/passwd
ADD --unpack=false vendor.tar.gz /opt/
LABEL org.opencontainers.image.version="${VERSION:-dev}" maintainer=me
MAINTAINER someone <someone@example.com>
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --retries=3 CMD /app health
ONBUILD RUN echo built from me
ENTRYPOINT ["/app"]
CMD serve --port 8080
