ARG G=global
FROM localhost/bkbase:1
ARG G
ARG L=local
RUN echo "$G $L" > /vals
