FROM localhost/bkbase:1
RUN --mount=type=cache,target=/cache echo c > /cache/c && ls /cache > /seen
