# bkdiff-target: middle
FROM localhost/bkbase:1 AS first
RUN echo first > /first
FROM first AS middle
ENV STAGE=middle
RUN echo middle > /middle
FROM middle AS last
RUN echo last > /last
