FROM localhost/bkbase:1
VOLUME /data
VOLUME ["/logs", "/other"]
RUN mkdir -p /data && echo after > /data/after
