FROM localhost/bkbase:1
ONBUILD RUN echo triggered > /t
ONBUILD COPY a.txt /onbuild-a
