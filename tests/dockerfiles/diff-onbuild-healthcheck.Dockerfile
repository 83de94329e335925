# ONBUILD, STOPSIGNAL, HEALTHCHECK (with options, then NONE in another stage).
FROM localhost/bbase:1 AS none
HEALTHCHECK CMD wget -q http://localhost/ || exit 1
HEALTHCHECK NONE
STOPSIGNAL 9
RUN echo none > /none

FROM localhost/bbase:1
COPY --from=none /none /
ONBUILD RUN echo triggered > /onbuild
ONBUILD COPY a.txt /
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=4 CMD ["/bin/true"]
HEALTHCHECK --interval=1m CMD test -e /bin/sh
