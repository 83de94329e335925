FROM localhost/bkbase:1 AS bb
FROM scratch
COPY --from=bb /bin/busybox /bin/busybox
RUN ["/bin/busybox", "touch", "/made"]
