# bkdiff-build-arg: SOURCE_DATE_EPOCH=0
FROM localhost/bkbase:1
ARG SOURCE_DATE_EPOCH
ARG A=from-arg
ENV E=from-env
RUN echo "$A $E" > /vals && env | sort | grep -v '^HOSTNAME=' > /env.txt
