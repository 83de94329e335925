FROM localhost/bkbase:1
USER app
RUN id -u > /tmp/app-id
USER root
RUN id -u > /root-id
