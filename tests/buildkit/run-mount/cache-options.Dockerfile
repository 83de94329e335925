FROM localhost/bkbase:1
RUN --mount=type=cache,id=shared,target=/var/cache/x,sharing=locked,mode=0700,uid=1000,gid=1000 stat -c '%a %u %g' /var/cache/x > /cache-stat
