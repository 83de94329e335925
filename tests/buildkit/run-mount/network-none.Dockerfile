FROM localhost/bkbase:1
RUN --network=none echo offline > /net
