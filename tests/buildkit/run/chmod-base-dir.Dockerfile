FROM localhost/bkbase:1
RUN chmod 0700 /tmp && chown 1000 /etc
