FROM localhost/bkbase:1 AS one
ENV E=one
ARG A=aone
FROM one
RUN echo "$E [$A]" > /vals
