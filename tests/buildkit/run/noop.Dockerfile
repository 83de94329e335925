FROM localhost/bkbase:1
RUN true
RUN echo nothing > /dev/null
