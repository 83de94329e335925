# COPY --link: the same files, however the layer is made.
FROM localhost/bbase:1
RUN mkdir -p /l && echo before > /l/existing
COPY --link a.txt /l/linked
COPY --link dir /l/dir/
