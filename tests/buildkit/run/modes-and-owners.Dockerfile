FROM localhost/bkbase:1
RUN mkdir -m 0700 /priv && touch /priv/f && chown 1000:50 /priv/f && chmod 4755 /priv/f && mkfifo /fifo
