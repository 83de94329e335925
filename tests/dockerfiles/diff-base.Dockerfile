# Differential base: a static busybox on scratch (built by each tool).
FROM scratch
COPY --chmod=0755 busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
