FROM localhost/bkbase:1
COPY --chmod=0600 a.txt /a600
COPY --chmod=755 dir /dir755
