FROM localhost/bkbase:1
RUN mkdir -p /x/y && echo y > /x/y/f
RUN rm -r /x && echo now-a-file > /x
