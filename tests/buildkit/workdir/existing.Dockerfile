FROM localhost/bkbase:1
WORKDIR /etc
RUN pwd > /tmp/pwd
