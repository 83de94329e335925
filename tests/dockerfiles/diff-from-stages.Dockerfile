# FROM: an ARG before the first FROM, stage names, a stage as a base.
ARG BASE=localhost/bbase:1
ARG TAGGED
FROM ${BASE} AS one
RUN echo one > /one

FROM one AS two
ARG BASE
RUN echo "base=$BASE" > /two

FROM two
RUN cat /one /two > /both
