# ENTRYPOINT alone sets no ArgsEscaped (the busybox base has a CMD, so
# start from scratch).
FROM scratch
COPY a.txt /
ENTRYPOINT ["/bin/echo", "entry"]
