FROM localhost/bkbase:1 AS src
RUN mkdir /out && echo made > /out/m
FROM localhost/bkbase:1
RUN --mount=type=bind,from=src,source=/out,target=/in cp /in/m /got
