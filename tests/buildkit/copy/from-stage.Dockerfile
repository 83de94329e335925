FROM localhost/bkbase:1 AS src
RUN mkdir -p /out/sub && echo o > /out/o && echo s > /out/sub/s && chmod 750 /out/sub && chown -R 1000 /out
FROM localhost/bkbase:1
COPY --from=src /out /out-copy
COPY --from=src /out/sub /sub-only
COPY --from=localhost/bkbase:1 /etc/passwd /passwd-from-image
