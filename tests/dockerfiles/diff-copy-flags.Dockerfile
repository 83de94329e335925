# COPY --chown (numeric), --chmod, directories and symlinks from the context,
# into directories that exist.
FROM localhost/bbase:1
RUN mkdir -p /o
COPY --chown=1000:1000 a.txt /o/owned
COPY --chown=12:34 dir /o/dir/
COPY --chown=7 --chmod=0751 b.sh /o/both.sh
COPY dir/ /o/plain/
COPY b.sh /o/keeps-mode.sh
