FROM localhost/bkbase:1 AS one
RUN echo one > /one
FROM one AS two
RUN echo two > /two
