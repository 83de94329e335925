FROM localhost/bkbase:1
RUN mkdir -p /o && echo 1 > /o/a && echo 2 > /o/b
RUN rm -r /o && mkdir /o && echo 3 > /o/c
