FROM localhost/bkbase:1
# bkdiff-build-arg: V=from-cli
ARG V=default
ARG W=default-w
RUN echo "$V $W" > /vals
