FROM localhost/bkbase:1
COPY --chown=app a.txt /by-name
COPY --chown=1000:50 a.txt /by-id
COPY --chown=app:staff dir /dir-by-name
COPY --chown=4321 b.sh /unknown-id
