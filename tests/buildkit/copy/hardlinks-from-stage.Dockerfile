FROM localhost/bkbase:1 AS src
RUN mkdir -p /h/sub && echo linked > /h/a && ln /h/a /h/b && ln /h/a /h/sub/c
FROM localhost/bkbase:1
COPY --from=src /h /h
COPY --from=src /h/a /h/b /two/
