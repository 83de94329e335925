FROM localhost/bkbase:1
# bkdiff-secret: s
RUN --mount=type=secret,id=s wc -c < /run/secrets/s > /secret-size
