ARG BASE=localhost/bkbase:1
FROM ${BASE}
RUN echo ok > /ok
