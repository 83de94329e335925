FROM localhost/bkbase:1
RUN echo shell > /shell && mkdir -p /d/e
