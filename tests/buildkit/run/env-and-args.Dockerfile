FROM localhost/bkbase:1
ARG A=from-arg
ENV E=from-env
RUN echo "$A $E" > /vals && env | sort | grep -v '^HOSTNAME=' > /env.txt
