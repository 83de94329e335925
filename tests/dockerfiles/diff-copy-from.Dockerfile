# COPY --from a named stage, a stage index, and the previous stage's results.
FROM localhost/bbase:1 AS builder
RUN mkdir -p /out/sub && echo built > /out/app && echo nested > /out/sub/n && chmod 0750 /out/sub && ln -s app /out/app-link

FROM localhost/bbase:1
COPY --from=builder /out /opt/
COPY --from=builder /out/app /single
COPY --from=0 /out/sub /sub-by-index
COPY --from=builder /out/app-link /opt-link
