FROM localhost/bkbase:1
USER app
WORKDIR /tmp/userwork
RUN id > /tmp/userwork/ids
