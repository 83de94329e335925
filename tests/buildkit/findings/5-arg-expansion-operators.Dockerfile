FROM localhost/bkbase:1
ARG TARGETPLATFORM=linux/amd64
ARG X=${TARGETPLATFORM#linux/}
RUN echo "$X" > /x
