FROM localhost/bkbase:1
USER 1000:50
WORKDIR /var/by-id
RUN id > /tmp/ids
