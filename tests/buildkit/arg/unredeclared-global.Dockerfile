ARG G=global
FROM localhost/bkbase:1
RUN echo "[$G]" > /vals
