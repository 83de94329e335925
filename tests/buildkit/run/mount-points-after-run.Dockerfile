FROM localhost/bkbase:1
RUN --mount=type=tmpfs,target=/mnt/t --mount=type=cache,target=/var/c --mount=type=bind,target=/srv/ctx echo ran > /ran
