FROM localhost/bkbase:1 AS src
RUN mkdir /out && echo o > /out/o
FROM localhost/bkbase:1
COPY --from=src /out/o /tmp
COPY --from=localhost/bkbase:1 /etc/group /root
