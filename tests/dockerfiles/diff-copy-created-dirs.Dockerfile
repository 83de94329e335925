# Directories around a COPY/ADD destination: existing ones keep their owner
# and mode; created ones are not given the --chmod of the files (and are
# owned as --chown says).
FROM localhost/bbase:1
RUN mkdir -p /existing/sub
COPY a.txt /added/
ADD --chown=3:4 b.sh /added/owned.sh
COPY --chmod=0600 a.txt b.sh /existing/sub/
COPY --chmod=0600 a.txt /existing/new/
COPY --chown=1000:1000 a.txt /owned/parent/file
